"""The Spark evaluator on a real local[2] Spark: (subset, fold) units, one per task, give
exactly the sequential evaluator's evaluations. Needs pyspark and Java (the test
environment has both); skipped without pyspark."""

import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import unittest

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "src"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "examples", "datasets"))

from feature_selection import evaluators, models  # noqa: E402
from feature_selection.datasets import Data  # noqa: E402
from feature_selection.evaluators import SequentialEvaluator, SparkEvaluator, units_per_task  # noqa: E402
from feature_selection.models import ModelSpec  # noqa: E402

import generate  # noqa: E402

try:
    import pyspark  # noqa: F401
except ImportError:  # pragma: no cover
    pyspark = None


def planted_data(n_molecules=24, n_samples=150, seed=3) -> Data:
    ids, samples, values, event, time_, _ = generate.generate(n_molecules, n_samples, 3, seed)
    return Data(molecules=ids, samples=samples, X=np.ascontiguousarray(values.T),
                event=event.astype(bool), time=time_.astype(float))


def masks(n, count, seed):
    rng = np.random.default_rng(seed)
    out = [rng.random(n) < p for p in np.linspace(0.1, 0.9, count)]
    out.append(np.zeros(n, dtype=bool))  # a failed evaluation is assembled too
    return out


def science(e):
    """Everything of an evaluation but its timings."""
    return (e.fitness, e.n_features, e.train_score, e.iterations, e.error)


class UnitsPerTaskTests(unittest.TestCase):
    def test_auto_runs_one_unit_per_task_unless_units_are_short_or_cores_few(self):
        # The first batch: at most four tasks per core.
        self.assertEqual(units_per_task("auto", 150, 64, None), 1)
        self.assertEqual(units_per_task("auto", 48, 2, None), 6)
        # Measured long units: one per task, whatever the cores.
        self.assertEqual(units_per_task("auto", 150, 64, 2.0), 1)
        self.assertEqual(units_per_task("auto", 48, 2, 0.5), 1)
        # 48 units of 20 ms on 2 cores: one core's share (24) holds under two seconds.
        self.assertEqual(units_per_task("auto", 48, 2, 0.02), 24)
        # 0.25 s units: eight make two seconds; never more than one core's share.
        self.assertEqual(units_per_task("auto", 150, 64, 0.25), 3)
        self.assertEqual(units_per_task("auto", 150, 16, 0.25), 8)

    def test_an_integer_setting_fixes_it(self):
        self.assertEqual(units_per_task("1", 48, 2, 0.001), 1)
        self.assertEqual(units_per_task("5", 48, 2, None), 5)


@unittest.skipUnless(pyspark, "pyspark is not installed")
class SparkEvaluatorTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        from pyspark import SparkConf, SparkContext

        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        conf = (SparkConf().setMaster("local[2]").setAppName("evaluator-test")
                .set("spark.ui.enabled", "false").set("spark.ui.showConsoleProgress", "false")
                .set("spark.driver.host", "127.0.0.1")
                .set("spark.driver.bindAddress", "127.0.0.1")
                .set(evaluators.UNITS_PER_TASK_CONF, "1"))
        cls.sc = SparkContext(conf=conf)
        cls.sc.setLogLevel("ERROR")
        # The workers import the package from an archive of src, as a job does scripts.zip.
        cls.tmp = tempfile.mkdtemp(prefix="fs-evaluators-")
        archive = os.path.join(cls.tmp, "scripts.zip")
        subprocess.run([os.path.join(HERE, "..", "build-py-files.sh"), archive], check=True,
                       capture_output=True)
        cls.sc.addPyFile(archive)
        cls.data = planted_data()

    @classmethod
    def tearDownClass(cls):
        cls.sc.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def compare(self, spec, batch):
        sequential = SequentialEvaluator(spec, self.data).evaluate(batch)
        spark = SparkEvaluator(self.sc, spec, self.data)
        self.addCleanup(spark.close)
        got = spark.evaluate(batch)
        self.assertEqual([science(e) for e in got], [science(e) for e in sequential])
        return spark, got, sequential

    def test_svm_and_rf_units_per_fold_give_the_sequential_evaluations_in_order(self):
        for spec in (ModelSpec(model="svm", cv_folds=3, random_state=5, svm_max_iterations=200),
                     ModelSpec(model="rf", cv_folds=4, rf_n_estimators=5, random_state=5)):
            with self.subTest(model=spec.model):
                batch = masks(self.data.X.shape[1], 5, seed=1)
                spark, got, _ = self.compare(spec, batch)
                # One task per (subset, fold) unit with unitsPerTask 1.
                self.assertEqual(spark.last_tasks, len(batch) * spec.cv_folds)
                self.assertTrue(np.isfinite(got[0].fitness))
                self.assertEqual(got[-1].fitness, float("-inf"))
                self.assertGreater(len({e.fitness for e in got}), 3)  # they do differ

    def test_units_grouped_into_fewer_tasks_give_the_same_evaluations(self):
        spec = ModelSpec(model="svm", cv_folds=3, random_state=9, svm_max_iterations=200)
        batch = masks(self.data.X.shape[1], 6, seed=4)
        sequential = SequentialEvaluator(spec, self.data).evaluate(batch)
        spark = SparkEvaluator(self.sc, spec, self.data)
        self.addCleanup(spark.close)
        spark.setting = "4"  # as --conf spark.featureSelection.unitsPerTask=4 would
        got = spark.evaluate(batch)
        self.assertEqual(spark.last_tasks, -(-len(batch) * 3 // 4))
        self.assertEqual([science(e) for e in got], [science(e) for e in sequential])

    def test_clustering_is_one_unit_per_subset(self):
        spec = ModelSpec(model="clustering", clustering_algorithm="k_means", random_state=2)
        batch = masks(self.data.X.shape[1], 4, seed=2)
        spark, _, _ = self.compare(spec, batch)
        self.assertEqual(spark.last_tasks, len(batch))

    def test_the_data_is_not_in_the_broadcast(self):
        spark = SparkEvaluator(self.sc, ModelSpec(model="svm", cv_folds=3), self.data)
        self.addCleanup(spark.close)
        shipped = len(pickle.dumps(spark.shared.value))
        self.assertLess(shipped, self.data.X.nbytes / 2)
        self.assertEqual(spark.setting, "1")


if __name__ == "__main__":
    unittest.main()
