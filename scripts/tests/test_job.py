"""The job run the way the service runs it: spark-submit with the committed scripts.zip.

Needs spark-submit: $SPARK_SUBMIT, or .venv/bin/spark-submit at the repository root
(.ci/python-env.sh creates it). Skipped when neither exists. Takes about 30 s per Spark run.
"""

import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

SCRIPTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(SCRIPTS)
EXAMPLES = os.path.join(REPO, "examples", "datasets")


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
        self.datasets = os.path.join(self.tmp, "datasets")
        self.results = os.path.join(self.tmp, "results")
        os.makedirs(os.path.join(self.datasets, "exp-1"))
        for name in ("molecules.csv", "clinical.csv"):
            shutil.copy(os.path.join(EXAMPLES, name), os.path.join(self.datasets, "exp-1", name))

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def submit(self, *args):
        env = dict(os.environ, DATASETS_PATH=self.datasets, RESULTS_PATH=self.results,
                   JOB_NAME="test-job")
        # A pip-installed spark-submit finds Spark with this interpreter: the one next to
        # it (its virtualenv's), else the one running the tests.
        beside = os.path.join(os.path.dirname(_spark_submit()), "python")
        env.setdefault("PYSPARK_PYTHON", beside if os.path.exists(beside) else sys.executable)
        command = [
            _spark_submit(), "--master", "local[2]",
            "--py-files", os.path.join(SCRIPTS, "scripts.zip"),
            os.path.join(SCRIPTS, "main.py"), *args,
        ]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)

    def ranking(self, app_name):
        with open(os.path.join(self.results, app_name, "result.csv"), newline="") as f:
            return list(csv.DictReader(f))

    def summary(self, app_name):
        with open(os.path.join(self.results, app_name, "summary.json")) as f:
            return json.load(f)

    def test_without_clinical_data_the_high_variance_molecules_come_first(self):
        run = self.submit("--app-name", "exp-1-app", "--molecules-dataset", "exp-1/molecules.csv",
                          "--n-stars", "15", "--cv-folds", "10")
        self.assertEqual(run.returncode, 0, run.stderr)
        rows = self.ranking("exp-1-app")
        self.assertEqual(len(rows), 24)
        self.assertEqual({rows[0]["molecule"], rows[1]["molecule"]}, {"GENE_07", "GENE_19"})
        self.assertEqual([r["rank"] for r in rows], [str(i) for i in range(1, 25)])
        scores = [float(r["score"]) for r in rows]
        self.assertEqual(scores, sorted(scores, reverse=True))
        summary = self.summary("exp-1-app")
        self.assertEqual(summary["criterion"], "variance")
        self.assertEqual(summary["job_name"], "test-job")
        self.assertEqual(summary["parameters"], {"n-stars": "15", "cv-folds": "10"})

    def test_with_clinical_data_the_molecules_that_follow_survival_time_come_first(self):
        run = self.submit("--app-name", "exp-1-app", "--molecules-dataset", "exp-1/molecules.csv",
                          "--clinical-dataset", "exp-1/clinical.csv", "--top", "5")
        self.assertEqual(run.returncode, 0, run.stderr)
        rows = self.ranking("exp-1-app")
        self.assertEqual(len(rows), 5)
        self.assertEqual({rows[0]["molecule"], rows[1]["molecule"]}, {"GENE_03", "GENE_11"})
        self.assertGreater(float(rows[1]["score"]), 0.9)
        self.assertLess(float(rows[2]["score"]), 0.9)
        self.assertEqual(self.summary("exp-1-app")["criterion"], "abs_pearson")

    def test_a_missing_dataset_fails_with_a_message_and_writes_nothing(self):
        run = self.submit("--app-name", "exp-1-app", "--molecules-dataset", "exp-1/nope.csv")
        self.assertEqual(run.returncode, 3, run.stdout + run.stderr)
        # spark-submit merges the Python driver's stderr into its own stdout.
        self.assertIn("dataset 'exp-1/nope.csv' not found", run.stdout)
        self.assertFalse(os.path.exists(os.path.join(self.results, "exp-1-app")))


if __name__ == "__main__":
    unittest.main()
