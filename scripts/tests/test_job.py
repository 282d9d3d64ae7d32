"""The jobs run the way the service runs them: spark-submit with the committed scripts.zip.

Needs spark-submit: $SPARK_SUBMIT, or .venv/bin/spark-submit at the repository root
(.ci/python-env.sh creates it); skipped when neither exists. The BBHA runs through the
service are in tests/spark_jobs.rs; here are the refusals and a Blind Search run.
"""

import json
import os
import shutil
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

    def submit(self, entry, *args):
        env = dict(os.environ, DATASETS_PATH=self.datasets, RESULTS_PATH=self.results,
                   JOB_NAME="test-job")
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
        self.assertEqual(sorted(os.listdir(self.results)), ["BS_1"])  # no staging folder left


if __name__ == "__main__":
    unittest.main()
