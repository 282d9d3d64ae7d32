"""The jobs run the way the service runs them: spark-submit with the committed scripts.zip.

Needs spark-submit: $SPARK_SUBMIT, or .venv/bin/spark-submit at the repository root
(.ci/python-env.sh creates it); skipped when neither exists. The BBHA runs through the
service are in tests/spark_jobs.rs; here are the refusals, a Blind Search run, and a BBHA
run with an s3:// RESULTS_PATH on moto's S3 server (progress reports included).
"""

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import unittest

SCRIPTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(SCRIPTS)
sys.path.insert(0, os.path.join(REPO, "examples", "datasets"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import generate  # noqa: E402
import multiomix_reader  # noqa: E402

try:
    import boto3
    from moto.server import ThreadedMotoServer
except ImportError:  # pragma: no cover - the test environment has both
    boto3 = None


def _spark_submit():
    candidate = os.environ.get("SPARK_SUBMIT") or os.path.join(REPO, ".venv", "bin", "spark-submit")
    return candidate if shutil.which(candidate) else None


class CommittedArchiveTests(unittest.TestCase):
    def test_scripts_zip_is_what_the_build_script_makes_from_src(self):
        with tempfile.TemporaryDirectory() as tmp:
            fresh = os.path.join(tmp, "scripts.zip")
            subprocess.run(
                [os.path.join(SCRIPTS, "build-py-files.sh"), fresh],
                check=True, capture_output=True,
            )
            with open(fresh, "rb") as a, open(os.path.join(SCRIPTS, "scripts.zip"), "rb") as b:
                self.assertEqual(
                    a.read(), b.read(),
                    "scripts/scripts.zip is stale: run scripts/build-py-files.sh and commit it",
                )


@unittest.skipUnless(_spark_submit(), "no spark-submit (set SPARK_SUBMIT or run .ci/python-env.sh)")
class SparkSubmitTests(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="feature-selection-test-")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        self.datasets = os.path.join(self.tmp, "datasets")
        self.results = os.path.join(self.tmp, "results")
        generate.write(os.path.join(self.datasets, "BS_1"), 5, 40, 2, seed=3)

    def submit(self, entry, *args, results=None, **extra_env):
        env = dict(os.environ, DATASETS_PATH=self.datasets, RESULTS_PATH=results or self.results,
                   JOB_NAME="test-job", **extra_env)
        # A pip-installed spark-submit finds Spark with this interpreter: the one next to
        # it (its virtualenv's), else the one running the tests.
        beside = os.path.join(os.path.dirname(_spark_submit()), "python")
        env.setdefault("PYSPARK_PYTHON", beside if os.path.exists(beside) else sys.executable)
        return subprocess.run(
            [_spark_submit(), "--master", "local[2]", "--driver-memory", "1g",
             "--py-files", os.path.join(SCRIPTS, "scripts.zip"), os.path.join(SCRIPTS, entry),
             *args],
            env=env, capture_output=True, text=True, timeout=300,
        )

    def job_lines(self, run):
        return [l for l in (run.stdout + run.stderr).splitlines() if l.startswith("[feature-selection]")]

    def common(self, app="BS_1"):
        return ["--app-name", app, "--molecules-dataset", "BS_1/molecules.csv",
                "--clinical-dataset", "BS_1/clinical.csv"]

    def test_unknown_argument_exits_2_naming_it_first(self):
        run = self.submit("main.py", *self.common(), "--n-star", "15")
        self.assertEqual(run.returncode, 2, run.stdout + run.stderr)
        self.assertEqual(self.job_lines(run), ["[feature-selection] error: unknown argument --n-star"])
        self.assertFalse(os.path.exists(self.results))

    def test_unusable_dataset_exits_3_naming_the_file(self):
        with open(os.path.join(self.datasets, "BS_1", "clinical.csv"), "a") as f:
            f.write("TCGA-0001b\t2\t10\n")
        run = self.submit("main.py", *self.common())
        self.assertEqual(run.returncode, 3, run.stdout + run.stderr)
        lines = self.job_lines(run)
        self.assertEqual(len(lines), 1, lines)
        self.assertIn("BS_1/clinical.csv", lines[0])
        self.assertIn("must be 0 or 1", lines[0])

    def test_blind_search_runs_every_subset_on_spark_and_multiomix_reads_it(self):
        run = self.submit("blind_search.py", *self.common(), "--model", "rf",
                          "--rf-n-estimators", "5", "--cv-folds", "3", "--random-state", "1")
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
        folder = os.path.join(self.results, "BS_1")
        summary = multiomix_reader.read(folder, os.path.join(self.datasets, "BS_1", "molecules.csv"))
        self.assertEqual(summary["times_rows"], 31)
        with open(os.path.join(folder, "result.json")) as f:
            result = json.load(f)
        self.assertEqual(result["algorithm"], "Blind Search")
        # No staging folder left; the progress report beside the result folder, not in it.
        self.assertEqual(sorted(os.listdir(self.results)), [".progress", "BS_1"])
        with open(os.path.join(self.results, ".progress", "BS_1.json")) as f:
            report = json.load(f)
        self.assertEqual((report["algorithm"], report["iteration"], report["iterations"]),
                         ("blind_search", 1, 1))
        self.assertEqual((report["evaluationsDone"], report["evaluationsTotal"]), (31, 31))
        self.assertEqual(report["bestFitness"], result["best_metric"])
        self.assertEqual(report["molecules"], result["number_of_features"])
        self.assertIn(f"[feature-selection] progress: iteration 1/1, best fitness "
                      f"{result['best_metric']:.4f} with {result['number_of_features']} molecules, "
                      "31/31 evaluations", self.job_lines(run))

    @unittest.skipIf(boto3 is None, "boto3 and moto are in the test environment")
    def test_bbha_reports_progress_to_s3_beside_the_uploaded_results(self):
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        self.addCleanup(server.stop)
        aws = dict(AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}", AWS_ACCESS_KEY_ID="testing",
                   AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
        s3 = boto3.client("s3", endpoint_url=aws["AWS_ENDPOINT_URL"], region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
        s3.create_bucket(Bucket="multiomix")
        run = self.submit("main.py", *self.common(), "--model", "rf", "--rf-n-estimators", "5",
                          "--cv-folds", "3", "--random-state", "1", "--n-stars", "3",
                          "--bbha-iterations", "3", results="s3://multiomix/results/", **aws)
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
        keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="multiomix")["Contents"])
        self.assertEqual(keys, ["results/.progress/BS_1.json", "results/BS_1/model.pkl",
                                "results/BS_1/result.json", "results/BS_1/times.json"])
        report = json.loads(s3.get_object(Bucket="multiomix", Key="results/.progress/BS_1.json")["Body"].read())
        result = json.loads(s3.get_object(Bucket="multiomix", Key="results/BS_1/result.json")["Body"].read())
        self.assertEqual((report["appName"], report["algorithm"]), ("BS_1", "bbha"))
        self.assertEqual((report["iteration"], report["iterations"]), (3, 3))
        # 3 stars and all molecules, then the 2 stars that are not the black hole, 3 times.
        self.assertEqual((report["evaluationsDone"], report["evaluationsTotal"]), (10, 10))
        self.assertEqual(result["evaluations"], 10)
        self.assertEqual(report["bestFitness"], result["best_metric"])
        self.assertEqual(report["molecules"], result["number_of_features"])
        self.assertEqual([p["iteration"] for p in report["history"]], [0, 1, 2, 3])
        self.assertEqual([p["evaluationsDone"] for p in report["history"]], [4, 6, 8, 10])
        shown = [line for line in self.job_lines(run) if "] progress: " in line]
        self.assertEqual([line.split(",")[0] for line in shown],
                         [f"[feature-selection] progress: iteration {i}/3" for i in range(4)])
        self.assertFalse(os.path.exists(self.results), "nothing written to the local folder")


if __name__ == "__main__":
    unittest.main()
