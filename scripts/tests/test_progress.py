"""The job's progress reports (progress.py): their order and content on real runs with
the sequential evaluator, the evaluations planned against those made, the throttle, the
size bound, a write that fails, and the S3 object against moto's server. The run through
spark-submit is in test_job.py."""

import json
import logging
import os
import shutil
import socket
import sys
import tempfile
import time
import unittest

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "src"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "examples", "datasets"))

from feature_selection import arguments, bbha, blind_search, job, progress, remote  # noqa: E402
from feature_selection.evaluators import SequentialEvaluator  # noqa: E402
from feature_selection.models import Evaluation, ModelSpec  # noqa: E402

import generate  # noqa: E402

try:
    import boto3
    from moto.server import ThreadedMotoServer
except ImportError:  # pragma: no cover - the test environment has both
    boto3 = None

APP = "BBHA_7"


class Recorded(progress.LocalFile):
    """The real file, and every document written to it, read back from disk as the
    service reads it."""

    def __init__(self, root, app_name=APP):
        super().__init__(root, app_name)
        self.documents = []

    def write(self, body):
        super().write(body)
        with open(self.path, "rb") as f:
            on_disk = f.read()
        assert on_disk == body, "the file holds the whole report just written"
        self.documents.append(json.loads(on_disk.decode("utf-8")))


class Memory:
    """A destination that keeps the bodies (for runs of thousands of reports)."""

    def __init__(self):
        self.bodies = []

    def write(self, body):
        self.bodies.append(body)

    def __str__(self):
        return "memory"


class CountingEvaluator:
    """Fitness: molecules among `good` minus a cost per molecule; counts what it evaluates.
    `fitness` overrides the value for every mask (ties, failures)."""

    def __init__(self, good, fitness=None):
        self.good = np.asarray(good, dtype=bool)
        self.fitness = fitness
        self.evaluated = 0
        self.on_batch = None

    def evaluate(self, masks):
        self.evaluated += len(masks)
        out = []
        for m in masks:
            f = float((m & self.good).sum() - 0.1 * m.sum()) if self.fitness is None else self.fitness
            out.append(Evaluation(f, int(m.sum()), 0.0, 0.0, 0.0))
        if self.on_batch is not None:
            self.on_batch()
        return out


def job_arguments(*extra, app=APP):
    return arguments.parse([
        "--app-name", app, "--molecules-dataset", f"{APP}/molecules.csv",
        "--clinical-dataset", f"{APP}/clinical.csv", "--cv-folds", "3", "--random-state", "3",
        *extra,
    ])


class JobRun(unittest.TestCase):
    """A planted-signal dataset and a RESULTS_PATH per test; runs a job in this process
    the way job.run does (the progress destination taken before remote.Results)."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="fs-progress-")
        cls.datasets = os.path.join(cls.tmp, "datasets")
        generate.write(os.path.join(cls.datasets, APP), 16, 50, 3, seed=5)
        generate.write(os.path.join(cls.datasets, "BS_6"), 6, 50, 2, seed=2)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.saved = {k: os.environ.get(k) for k in ("DATASETS_PATH", "RESULTS_PATH")}
        self.addCleanup(self.restore)
        os.environ["DATASETS_PATH"] = self.datasets
        self.results = tempfile.mkdtemp(dir=self.tmp)
        os.environ["RESULTS_PATH"] = self.results
        self.scratch = remote.workdir()
        self.addCleanup(remote.cleanup, self.scratch)

    def restore(self):
        for key, value in self.saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    def run_job(self, algorithm, args, target=None, publish_with=None):
        """(exit code, log lines, result.json or None)."""
        lines = []
        destination = job.progress_destination(args.app_name) if target is None else target
        output = remote.Results(self.scratch)
        data = job.load(args, algorithm)
        spec = ModelSpec.from_arguments(args)
        evaluator = SequentialEvaluator(spec, data)
        outcome, all_features = job.search(algorithm, args, evaluator, len(data.molecules),
                                           lines.append, progress_to=destination)
        code = job.finish(args, algorithm, data, spec, arguments.parameters_string(args),
                          outcome, all_features, time.monotonic(), evaluator)
        if publish_with is not None:
            output.publish(args.app_name, client=publish_with)
        folder = os.path.join(os.environ["RESULTS_PATH"], args.app_name)
        result = None
        if os.path.exists(os.path.join(folder, "result.json")):
            with open(os.path.join(folder, "result.json")) as f:
                result = json.load(f)
        return code, lines, result, destination


def progress_lines(lines):
    return [line for line in lines if line.startswith("progress: ")]


class BbhaReportTests(JobRun):
    def check_run(self, documents, lines, result, iterations):
        self.assertEqual([d["iteration"] for d in documents], list(range(iterations + 1)))
        last = documents[-1]
        for d in documents:
            self.assertEqual((d["version"], d["appName"], d["algorithm"], d["iterations"]),
                             (1, APP, "bbha", iterations))
            self.assertEqual(d["evaluationsTotal"], last["evaluationsTotal"])
            self.assertLessEqual(d["evaluationsDone"], d["evaluationsTotal"])
            self.assertLessEqual(d["startedAt"], d["updatedAt"])
        done = [d["evaluationsDone"] for d in documents]
        self.assertTrue(all(a < b for a, b in zip(done, done[1:])), done)
        fitness = [d["bestFitness"] for d in documents]
        self.assertTrue(all(a <= b for a, b in zip(fitness, fitness[1:])), fitness)
        updated = [d["updatedAt"] for d in documents]
        self.assertEqual(updated, sorted(updated))
        self.assertEqual(len({d["startedAt"] for d in documents}), 1)

        # The end: what result.json says.
        self.assertEqual(last["evaluationsDone"], last["evaluationsTotal"])
        self.assertEqual(last["evaluationsDone"], result["evaluations"])
        self.assertEqual(last["bestFitness"], result["best_metric"])
        self.assertEqual(last["molecules"], result["number_of_features"])
        self.assertEqual(last["molecules"], len(result["features"].split(" | ")))

        # The history: one point per report, each the report it was.
        self.assertEqual(len(last["history"]), iterations + 1)
        for d, point in zip(documents, last["history"]):
            self.assertEqual(point, {"iteration": d["iteration"], "bestFitness": d["bestFitness"],
                                     "molecules": d["molecules"],
                                     "evaluationsDone": d["evaluationsDone"], "at": d["updatedAt"]})

        # One log line per report, in order, with the figures written.
        shown = progress_lines(lines)
        self.assertEqual(len(shown), len(documents))
        for d, line in zip(documents, shown):
            self.assertEqual(
                line,
                f"progress: iteration {d['iteration']}/{iterations}, best fitness "
                f"{d['bestFitness']:.4f} with {d['molecules']} molecules, "
                f"{d['evaluationsDone']}/{d['evaluationsTotal']} evaluations",
            )

    def test_a_planted_signal_run_reports_every_iteration_in_order(self):
        for version in ("1", "2"):
            with self.subTest(version=version):
                target = Recorded(self.results)
                args = job_arguments("--n-stars", "5", "--bbha-iterations", "4",
                                     "--bbha-version", version)
                code, lines, result, _ = self.run_job(job.BBHA, args, target)
                self.assertEqual(code, job.EXIT_OK)
                self.check_run(target.documents, lines, result, 4)
                # 5 stars and all molecules, then 4 moved stars in each of 4 iterations.
                self.assertEqual(target.documents[-1]["evaluationsTotal"], 5 + 1 + 4 * 4)
                self.assertEqual(target.documents[0]["evaluationsDone"], 6)

    def test_the_file_is_beside_the_result_folder_not_in_it(self):
        args = job_arguments("--n-stars", "3", "--bbha-iterations", "2", "--model", "rf",
                             "--rf-n-estimators", "5")
        code, _, result, destination = self.run_job(job.BBHA, args)
        self.assertEqual(code, job.EXIT_OK)
        self.assertEqual(destination.path, os.path.join(self.results, ".progress", f"{APP}.json"))
        self.assertEqual(sorted(os.listdir(self.results)), [".progress", APP])
        self.assertEqual(os.listdir(os.path.join(self.results, ".progress")), [f"{APP}.json"])
        jsons = sorted(n for n in os.listdir(os.path.join(self.results, APP)) if n.endswith(".json"))
        self.assertEqual(jsons, ["result.json", "times.json"])
        with open(destination.path, encoding="utf-8") as f:
            final = json.load(f)
        self.assertEqual((final["iteration"], final["iterations"]), (2, 2))
        self.assertEqual(final["evaluationsDone"], result["evaluations"])

    def test_evaluations_total_counts_what_the_search_evaluates(self):
        # Few molecules and many stars: stars land on the black hole's mask and are
        # swallowed (redrawn or toggled). Ties (a flat fitness) move the black hole to
        # smaller stars; failed evaluations (-inf) leave no finite fitness to report.
        good = np.zeros(3, dtype=bool)
        good[1] = True
        cases = {"signal": None, "ties": 0.5, "failures": float("-inf")}
        for version in (bbha.ORIGINAL, bbha.IMPROVED):
            for name, fitness in cases.items():
                with self.subTest(version=version, case=name):
                    evaluator = CountingEvaluator(good, fitness)
                    reports = []
                    total = bbha.evaluations_total(10, 12, n_extra=1)
                    outcome = bbha.run(evaluator, 3, n_stars=10, iterations=12, seed=4,
                                       version=version, extra_masks=[np.ones(3, dtype=bool)],
                                       progress=lambda *r: reports.append(r))
                    if fitness != float("-inf"):  # no finite fitness, no event horizon
                        self.assertGreater(sum(outcome.swallowed), 0, "the case swallows stars")
                    self.assertEqual(evaluator.evaluated, total)
                    self.assertEqual(reports[-1][3], total)
                    self.assertEqual([r[0] for r in reports], list(range(13)))
                    if fitness == float("-inf"):
                        reporter = progress.Reporter(APP, progress.BBHA, 12, total, Memory())
                        reporter(*reports[-1])
                        self.assertIsNone(json.loads(reporter.target.bodies[-1])["bestFitness"])
                    else:
                        self.assertEqual(reports[-1][1], outcome.best_fitness)
                        self.assertEqual(reports[-1][2], int(outcome.best_mask.sum()))


class BlindSearchReportTests(JobRun):
    def test_a_job_reports_its_one_batch_with_the_result(self):
        target = Recorded(self.results, "BS_6")
        args = arguments.parse(["--app-name", "BS_6", "--molecules-dataset", "BS_6/molecules.csv",
                                "--clinical-dataset", "BS_6/clinical.csv", "--model", "rf",
                                "--rf-n-estimators", "5", "--cv-folds", "3", "--random-state", "1"])
        code, lines, result, _ = self.run_job(job.BLIND_SEARCH, args, target)
        self.assertEqual(code, job.EXIT_OK)
        self.assertEqual(len(target.documents), 1)
        d = target.documents[0]
        self.assertEqual((d["algorithm"], d["iteration"], d["iterations"]), ("blind_search", 1, 1))
        self.assertEqual((d["evaluationsDone"], d["evaluationsTotal"]), (63, 63))
        self.assertEqual(result["evaluations"], 63)
        self.assertEqual(d["bestFitness"], result["best_metric"])
        self.assertEqual(d["molecules"], result["number_of_features"])
        self.assertEqual(progress_lines(lines), [
            f"progress: iteration 1/1, best fitness {d['bestFitness']:.4f} with {d['molecules']} "
            "molecules, 63/63 evaluations"])

    def test_reports_are_at_least_the_interval_apart_and_the_last_is_always_written(self):
        # 31 batches of one subset, each taking 0.7 s of a fake clock: reports at batches
        # 1, 4, 7, ..., 31 (2.1 s apart), the last one included.
        now = [1000.0]
        evaluator = CountingEvaluator(np.array([1, 0, 1, 0, 0], dtype=bool))

        def tick():
            now[0] += 0.7

        evaluator.on_batch = tick
        target = Memory()
        reporter = progress.Reporter("BS_5", progress.BLIND_SEARCH, blind_search.chunks(5, batch=1),
                                     blind_search.evaluations_total(5), target,
                                     min_interval=progress.BLIND_SEARCH_INTERVAL, clock=lambda: now[0])
        outcome = blind_search.run(evaluator, 5, batch=1, progress=reporter)
        documents = [json.loads(b) for b in target.bodies]
        self.assertEqual([d["iteration"] for d in documents], list(range(1, 32, 3)))
        at = [d["updatedAt"] for d in documents]
        self.assertTrue(all(b - a >= 2.0 for a, b in zip(at, at[1:])), at)
        last = documents[-1]
        self.assertEqual((last["iteration"], last["iterations"]), (31, 31))
        self.assertEqual((last["evaluationsDone"], last["evaluationsTotal"]), (31, 31))
        self.assertEqual(evaluator.evaluated, 31)
        self.assertEqual(last["bestFitness"], outcome.best_fitness)
        self.assertEqual(last["molecules"], 2)  # molecules 0 and 2, nothing else pays
        self.assertEqual(len(last["history"]), len(documents))

    def test_a_last_batch_inside_the_interval_is_still_written(self):
        now = [0.0]
        reporter = progress.Reporter("BS_5", progress.BLIND_SEARCH, 3, 30, Memory(),
                                     min_interval=2.0, clock=lambda: now[0])
        written = []
        for iteration in (1, 2, 3):
            now[0] += 0.1
            written.append(reporter(iteration, 0.5, 2, iteration * 10))
        self.assertEqual(written, [True, False, True])


class SizeTests(unittest.TestCase):
    def test_thin_keeps_the_ends_and_spaces_the_middle_evenly(self):
        points = list(range(1000))
        kept = progress.thin(points, 200)
        self.assertEqual(len(kept), 200)
        self.assertEqual((kept[0], kept[-1]), (0, 999))
        self.assertEqual({b - a for a, b in zip(kept, kept[1:])}, {5, 6})
        self.assertEqual(progress.thin(points[:150], 200), points[:150])

    def test_a_long_blind_search_stays_within_200_points_and_64_kib(self):
        # Every one of 4095 subsets its own batch, without throttle, under the longest
        # app name the arguments allow: 4095 reports.
        app = "B" * 128
        evaluator = CountingEvaluator(np.zeros(12, dtype=bool))
        target = Memory()
        reporter = progress.Reporter(app, progress.BLIND_SEARCH, 4095, 4095, target)
        blind_search.run(evaluator, 12, batch=1, progress=reporter)
        self.assertEqual(len(target.bodies), 4095)
        self.assertLessEqual(max(len(b) for b in target.bodies), progress.MAX_BYTES)
        last = json.loads(target.bodies[-1])
        history = [p["iteration"] for p in last["history"]]
        self.assertEqual(len(history), progress.HISTORY_POINTS)
        self.assertEqual((history[0], history[-1]), (1, 4095))
        self.assertEqual({b - a for a, b in zip(history, history[1:])}, {20, 21})
        self.assertEqual(len(json.loads(target.bodies[150])["history"]), 151)

    def test_a_document_over_the_bound_has_its_history_thinned_further(self):
        target = Memory()
        reporter = progress.Reporter(APP, progress.BBHA, 10000, 10**6, target, max_bytes=4096)
        for i in range(600):
            reporter(i, 0.5 + i / 10000, 40, 100 * (i + 1))
        for body in target.bodies:
            self.assertLessEqual(len(body), 4096)
        last = json.loads(target.bodies[-1])
        self.assertLess(len(last["history"]), 50)
        self.assertEqual((last["history"][0]["iteration"], last["history"][-1]["iteration"]), (0, 599))
        self.assertEqual(last["iteration"], 599)

    def test_a_document_that_cannot_fit_is_not_written_and_the_run_goes_on(self):
        target = Memory()
        lines = []
        reporter = progress.Reporter(APP, progress.BBHA, 3, 10, target, log=lines.append, max_bytes=200)
        for i in range(4):
            self.assertTrue(reporter(i, 0.5, 4, i + 7))
        self.assertEqual(target.bodies, [])
        warnings = [line for line in lines if line.startswith("warning: ")]
        self.assertEqual(len(warnings), 1, lines)
        self.assertIn("over 200 bytes", warnings[0])
        self.assertEqual(len(progress_lines(lines)), 4)


class TokenTests(unittest.TestCase):
    def setUp(self):
        saved = os.environ.get("PROGRESS_TOKEN")
        self.addCleanup(lambda: os.environ.pop("PROGRESS_TOKEN", None) if saved is None
                        else os.environ.__setitem__("PROGRESS_TOKEN", saved))

    def test_the_service_token_from_the_environment_is_in_every_report(self):
        token = "0f" * 16
        os.environ["PROGRESS_TOKEN"] = token
        target = Memory()
        reporter = progress.Reporter(APP, progress.BBHA, 2, 12, target)
        for i in range(3):
            reporter(i, 0.25 * i, 3, 4 * (i + 1))
        documents = [json.loads(b) for b in target.bodies]
        self.assertEqual([d["token"] for d in documents], [token] * 3)
        # Only the document carries it: the history points do not repeat it.
        self.assertNotIn("token", documents[-1]["history"][-1])

    def test_without_the_variable_a_report_has_no_token(self):
        for unset in (None, ""):
            with self.subTest(value=unset):
                if unset is None:
                    os.environ.pop("PROGRESS_TOKEN", None)
                else:
                    os.environ["PROGRESS_TOKEN"] = unset
                target = Memory()
                progress.Reporter(APP, progress.BBHA, 1, 6, target)(0, 0.5, 2, 3)
                self.assertNotIn("token", json.loads(target.bodies[0]))


class WriteFailureTests(JobRun):
    def test_an_unwritable_folder_is_one_warning_and_the_job_still_succeeds(self):
        # A file where the .progress folder would be: no report can be written (even as root).
        blocker = os.path.join(self.results, ".progress")
        with open(blocker, "w") as f:
            f.write("not a folder")
        args = job_arguments("--n-stars", "3", "--bbha-iterations", "3", "--model", "rf",
                             "--rf-n-estimators", "5")
        code, lines, result, destination = self.run_job(job.BBHA, args)
        self.assertEqual(code, job.EXIT_OK)
        self.assertIsNotNone(result)
        warnings = [line for line in lines if line.startswith("warning: progress")]
        self.assertEqual(len(warnings), 1, lines)
        self.assertIn(destination.path, warnings[0])
        self.assertEqual(len(progress_lines(lines)), 4, "every report is still logged")
        self.assertTrue(os.path.isfile(blocker))
        self.assertEqual(sorted(os.listdir(self.results)), [".progress", APP])

    def test_a_write_that_works_again_carries_the_reports_it_missed(self):
        blocker = os.path.join(self.results, ".progress")
        with open(blocker, "w") as f:
            f.write("not a folder")
        evaluator = CountingEvaluator(np.array([1, 1, 0, 0, 0, 0], dtype=bool))
        batches = []

        def unblock_after_two():
            batches.append(1)
            if len(batches) == 2 and os.path.isfile(blocker):
                os.unlink(blocker)

        evaluator.on_batch = unblock_after_two
        lines = []
        target = Recorded(self.results)
        reporter = progress.Reporter(APP, progress.BBHA, 4, bbha.evaluations_total(4, 4), target,
                                     log=lines.append)
        bbha.run(evaluator, 6, n_stars=4, iterations=4, seed=2, progress=reporter)
        # Iteration 0's report failed; iteration 1's batch removed the blocker first.
        self.assertEqual([d["iteration"] for d in target.documents], [1, 2, 3, 4])
        self.assertEqual([p["iteration"] for p in target.documents[0]["history"]], [0, 1])
        self.assertEqual(reporter.failed, 1)
        self.assertEqual(len([line for line in lines if line.startswith("warning: ")]), 1)
        self.assertIn(f"progress reports written to {target.path} again", lines)
        self.assertEqual(target.documents[-1]["evaluationsDone"], evaluator.evaluated)


@unittest.skipIf(boto3 is None, "boto3 and moto are in the test environment (.ci/requirements.txt)")
class S3ObjectTests(JobRun):
    BUCKET = "multiomix-bucket"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            cls.port = s.getsockname()[1]
        cls.server = ThreadedMotoServer(ip_address="127.0.0.1", port=cls.port, verbose=False)
        cls.server.start()
        cls.saved_aws = {k: os.environ.get(k) for k in (
            "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}
        os.environ.update({
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{cls.port}",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        })

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        for key, value in cls.saved_aws.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        self.s3 = boto3.client("s3")
        self.s3.create_bucket(Bucket=self.BUCKET)
        self.addCleanup(self.empty_bucket)

    def empty_bucket(self):
        for o in self.s3.list_objects_v2(Bucket=self.BUCKET).get("Contents", []):
            self.s3.delete_object(Bucket=self.BUCKET, Key=o["Key"])
        self.s3.delete_bucket(Bucket=self.BUCKET)

    def keys(self):
        return sorted(o["Key"] for o in self.s3.list_objects_v2(Bucket=self.BUCKET).get("Contents", []))

    def test_each_report_is_put_whole_beside_the_uploaded_results(self):
        os.environ["RESULTS_PATH"] = f"s3://{self.BUCKET}/results"
        args = job_arguments("--n-stars", "3", "--bbha-iterations", "3", "--model", "rf",
                             "--rf-n-estimators", "5")
        destination = job.progress_destination(APP)
        puts = []
        destination.client = boto3.client("s3")
        destination.client.meta.events.register(
            "provide-client-params.s3.PutObject", lambda params, **_: puts.append(params["Key"]))
        code, lines, result, _ = self.run_job(job.BBHA, args, destination,
                                              publish_with=boto3.client("s3"))
        self.assertEqual(code, job.EXIT_OK)
        self.assertFalse(os.environ["RESULTS_PATH"].startswith("s3://"), "results went to local disk")
        self.assertEqual(str(destination), f"s3://{self.BUCKET}/results/.progress/{APP}.json")
        key = f"results/.progress/{APP}.json"
        self.assertEqual(puts, [key] * 4)
        self.assertEqual(self.keys(), sorted([key, f"results/{APP}/model.pkl",
                                              f"results/{APP}/result.json", f"results/{APP}/times.json"]))
        got = self.s3.get_object(Bucket=self.BUCKET, Key=key)
        self.assertEqual(got["ContentType"], "application/json")
        final = json.loads(got["Body"].read())
        self.assertEqual((final["iteration"], final["iterations"]), (3, 3))
        self.assertEqual(final["evaluationsDone"], final["evaluationsTotal"])
        self.assertEqual(final["evaluationsDone"], result["evaluations"])
        self.assertEqual(final["bestFitness"], result["best_metric"])
        self.assertEqual([p["iteration"] for p in final["history"]], [0, 1, 2, 3])

    def test_the_destination_is_the_location_the_job_received(self):
        os.environ["RESULTS_PATH"] = f"s3://{self.BUCKET}/deep/results/"
        destination = job.progress_destination(APP)
        remote.Results(self.scratch)
        self.assertFalse(os.environ["RESULTS_PATH"].startswith("s3://"))
        self.assertEqual((destination.bucket, destination.key),
                         (self.BUCKET, f"deep/results/.progress/{APP}.json"))
        os.environ["RESULTS_PATH"] = f"s3://{self.BUCKET}"
        self.assertEqual(job.progress_destination(APP).key, f".progress/{APP}.json")

    def test_progress_path_takes_the_place_of_results_path_for_reports_only(self):
        os.environ["RESULTS_PATH"] = self.scratch
        os.environ["PROGRESS_PATH"] = f"s3://{self.BUCKET}/results/"
        try:
            destination = job.progress_destination(APP)
        finally:
            del os.environ["PROGRESS_PATH"]
        self.assertEqual((destination.bucket, destination.key),
                         (self.BUCKET, f"results/.progress/{APP}.json"))
        self.assertEqual(os.environ["RESULTS_PATH"], self.scratch)
        # Unset, RESULTS_PATH decides again.
        self.assertNotIsInstance(job.progress_destination(APP), type(destination))

    def test_a_missing_bucket_is_one_warning_and_the_job_still_succeeds(self):
        os.environ["RESULTS_PATH"] = "s3://no-such-bucket/results/"
        args = job_arguments("--n-stars", "3", "--bbha-iterations", "2", "--model", "rf",
                             "--rf-n-estimators", "5")
        code, lines, result, _ = self.run_job(job.BBHA, args)
        self.assertEqual(code, job.EXIT_OK)
        self.assertIsNotNone(result)
        warnings = [line for line in lines if line.startswith("warning: progress")]
        self.assertEqual(len(warnings), 1, lines)
        self.assertIn("s3://no-such-bucket/results/.progress/BBHA_7.json", warnings[0])
        self.assertEqual(len(progress_lines(lines)), 3)


if __name__ == "__main__":
    unittest.main()
