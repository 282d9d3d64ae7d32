"""The result files, read back the way Multiomix reads them; no Spark needed (the
sequential evaluator stands in for Spark's, which runs the same code per task)."""

import json
import os
import shutil
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "src"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "examples", "datasets"))
sys.path.insert(0, HERE)

from feature_selection import arguments, job, results  # noqa: E402
from feature_selection.evaluators import SequentialEvaluator  # noqa: E402
from feature_selection.models import ModelSpec  # noqa: E402

import generate  # noqa: E402
import multiomix_reader  # noqa: E402


class ResultFilesTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="fs-results-")
        cls.datasets = os.path.join(cls.tmp, "datasets")
        generate.write(os.path.join(cls.datasets, "BBHA_7"), 16, 50, 3, seed=5)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        os.environ["DATASETS_PATH"] = self.datasets
        self.results = tempfile.mkdtemp(dir=self.tmp)
        os.environ["RESULTS_PATH"] = self.results

    def run_job(self, algorithm, *extra):
        args = arguments.parse([
            "--app-name", "BBHA_7", "--molecules-dataset", "BBHA_7/molecules.csv",
            "--clinical-dataset", "BBHA_7/clinical.csv", "--n-stars", "4",
            "--bbha-iterations", "2", "--cv-folds", "3", "--random-state", "3", *extra,
        ])
        data = job.load(args, algorithm)
        spec = ModelSpec.from_arguments(args)
        evaluator = SequentialEvaluator(spec, data)
        outcome, all_features = job.search(algorithm, args, evaluator, len(data.molecules), lambda m: None)
        code = job.finish(args, algorithm, data, spec, arguments.parameters_string(args),
                          outcome, all_features, time.monotonic(), evaluator)
        self.assertEqual(code, job.EXIT_OK)
        folder = os.path.join(self.results, "BBHA_7")
        summary = multiomix_reader.read(folder, os.path.join(self.datasets, "BBHA_7/molecules.csv"))
        with open(os.path.join(folder, "result.json")) as f:
            result = json.load(f)
        with open(os.path.join(folder, "times.json")) as f:
            times = json.load(f)
        return summary, result, times, outcome

    def test_svm_results_read_as_multiomix_does(self):
        summary, result, times, outcome = self.run_job(
            job.BBHA, "--model", "svm", "--svm-is-regression", "true", "--svm-kernel", "rbf")
        self.assertEqual(summary["model_class"], "FastKernelSurvivalSVM")
        self.assertEqual(summary["parameters"]["task"], "regression")
        self.assertEqual(summary["parameters"]["kernel"], "rbf")
        self.assertEqual(summary["parameters"]["max_iterations"], 1000)
        # One times row per evaluation: 4 stars + all molecules, then 3 moved stars twice.
        self.assertEqual(summary["times_rows"], 5 + 3 + 3)
        self.assertEqual(len(times["fitness"]), result["evaluations"])
        self.assertEqual(summary["best_metric"], max(times["fitness"]))
        self.assertEqual(len(summary["features"]), int(outcome.best_mask.sum()))
        self.assertIn("CNA_LOSS_G2_3", generate.identifiers(16))  # NAMEs with "_" exist here
        for name, kind, identifier in zip(summary["names"], summary["types"], summary["features"]):
            self.assertEqual(f"{name}_{kind}", identifier)
        for key in ("dataset", "model", "improved", "best_metric_with_all_features", "execution_time"):
            self.assertIn(key, result)
        self.assertEqual(result["best_metric_with_all_features"], times["fitness"][4])

    def test_rf_results(self):
        summary, _, _, _ = self.run_job(job.BBHA, "--model", "rf", "--rf-n-estimators", "5")
        self.assertEqual(summary["model_class"], "RandomSurvivalForest")
        self.assertEqual(summary["parameters"]["n_estimators"], 5)

    def test_every_clustering_algorithm_and_scoring(self):
        expected = {"k_means": "KMeans", "bk_means": "BisectingKMeans",
                    "spectral": "SpectralClustering", "ward": "AgglomerativeClustering"}
        for algorithm, cls in expected.items():
            for scoring in arguments.SCORING_METHODS:
                with self.subTest(algorithm=algorithm, scoring=scoring):
                    summary, _, times, _ = self.run_job(
                        job.BBHA, "--model", "clustering", "--clustering-algorithm", algorithm,
                        "--number-of-clusters", "3", "--clustering-scoring-method", scoring)
                    self.assertEqual(summary["model_class"], cls)
                    self.assertEqual(summary["parameters"]["algorithm"], algorithm)
                    self.assertEqual(summary["parameters"]["scoring_method"], scoring)
                    self.assertEqual(summary["parameters"]["n_clusters"], 3)
                    if scoring == "log_likelihood":
                        self.assertTrue(all(f < 0 for f in times["fitness"]))
                    else:
                        self.assertTrue(all(0 <= f <= 1 for f in times["fitness"]))

    def test_blind_search_finds_the_best_of_all_subsets(self):
        generate.write(os.path.join(self.datasets, "BBHA_7"), 4, 50, 2, seed=5)
        self.addCleanup(generate.write, os.path.join(self.datasets, "BBHA_7"), 16, 50, 3, 5)
        summary, result, times, _ = self.run_job(job.BLIND_SEARCH, "--model", "svm")
        self.assertEqual(result["evaluations"], 15)
        self.assertEqual(result["best_metric"], max(times["fitness"]))
        self.assertEqual(times["number_of_features"][-1], 4)  # the last subset is all of them
        self.assertEqual(result["best_metric_with_all_features"], times["fitness"][-1])

    def test_blind_search_refuses_too_many_molecules_with_the_count_and_limit(self):
        args = arguments.parse(["--app-name", "BBHA_7", "--molecules-dataset", "BBHA_7/molecules.csv",
                                "--clinical-dataset", "BBHA_7/clinical.csv", "--cv-folds", "3"])
        with self.assertRaises(job.datasets.DatasetError) as caught:
            job.load(args, job.BLIND_SEARCH)
        self.assertIn("16 molecules", str(caught.exception))
        self.assertIn("limit is 12", str(caught.exception))


class AtomicWriteTests(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="fs-atomic-")
        self.addCleanup(shutil.rmtree, self.root, ignore_errors=True)
        os.environ["RESULTS_PATH"] = self.root

    def test_a_failed_write_leaves_no_result_and_no_partial_folder(self):
        with self.assertRaises(Exception):
            results.write("BBHA_3", {"features": "A_1", "best_metric": 1.0}, {}, lambda: None)
        self.assertEqual(os.listdir(self.root), [])

    def test_a_new_result_replaces_the_old_and_a_failed_one_keeps_it(self):
        results.write("BBHA_3", {"features": "A_1", "best_metric": 0.5}, {"fitness": [0.5]}, None)
        results.write("BBHA_3", {"features": "B_2", "best_metric": 0.7}, {"fitness": [0.7]}, None)
        with self.assertRaises(Exception):
            results.write("BBHA_3", {"features": "C_3", "best_metric": 0.9}, {}, lambda: None)
        self.assertEqual(os.listdir(self.root), ["BBHA_3"])
        with open(os.path.join(self.root, "BBHA_3", "result.json")) as f:
            self.assertEqual(json.load(f)["features"], "B_2")


if __name__ == "__main__":
    unittest.main()
