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
        # With the clinical file the reader recomputes the model, best_metric and the times
        # row of the selected subset with the libraries, and fails on any difference.
        summary = multiomix_reader.read(folder, os.path.join(self.datasets, "BBHA_7/molecules.csv"),
                                        os.path.join(self.datasets, "BBHA_7/clinical.csv"))
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
        self.assertTrue(summary["features_sorted"])
        self.assertTrue(summary["model_order_checked"])
        # Optimizer iterations, fit time per iteration and one fold's scoring time.
        self.assertGreater(summary["best_row"]["number_of_iterations"], 1)
        self.assertEqual(summary["best_row"]["number_of_iterations"], summary["recomputed_iterations"])
        for row in zip(times["times_by_iteration"], times["number_of_iterations"],
                       times["test_times"], times["execution_times"]):
            per_iteration, nit, test_time, whole = row
            self.assertGreater(per_iteration, 0.0)
            self.assertLess(per_iteration * nit, whole)
            self.assertLess(test_time * 3, whole)

    def test_rf_results(self):
        summary, _, times, _ = self.run_job(job.BBHA, "--model", "rf", "--rf-n-estimators", "5")
        self.assertEqual(summary["model_class"], "RandomSurvivalForest")
        self.assertEqual(summary["parameters"]["n_estimators"], 5)
        self.assertTrue(summary["model_order_checked"])
        self.assertEqual(set(times["number_of_iterations"]), {0})
        self.assertEqual(set(times["times_by_iteration"]), {0.0})
        self.assertTrue(all(t > 0.0 for t in times["test_times"]))

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
                    self.assertEqual(summary["inference"], algorithm not in ("spectral", "ward"))
                    for key in ("number_of_iterations", "times_by_iteration", "test_times", "train_scores"):
                        self.assertEqual(set(times[key]), {0}, key)
                    if scoring == "log_likelihood":
                        self.assertTrue(all(f < 0 for f in times["fitness"]))
                    else:
                        self.assertTrue(all(0 <= f <= 1 for f in times["fitness"]))

    def test_a_model_fitted_in_the_file_row_order_fails_the_reader(self):
        """The dataset's file order is not its sorted order (generate.py writes the omics
        interleaved), so a model fitted on the selected molecules in file row order gets
        permuted columns from Multiomix; the reader must catch it. The job's own
        `finish` writes the results of a chosen subset of four omics, so the check does
        not depend on what a search happens to select."""
        import pickle

        import numpy as np
        import pandas as pd
        from sklearn.base import clone

        from feature_selection import bbha

        molecules_csv = os.path.join(self.datasets, "BBHA_7/molecules.csv")
        clinical_csv = os.path.join(self.datasets, "BBHA_7/clinical.csv")
        frame = pd.read_csv(molecules_csv, sep="\t", index_col=0)
        clinical = pd.read_csv(clinical_csv, sep="\t", index_col=0).loc[frame.columns]
        chosen = ["GENE0_1", "hsa-mir-5_2", "CNA_LOSS_G2_3", "cg000011_4", "GENE12_1"]
        in_file_order = [m for m in frame.index if m in chosen]
        self.assertNotEqual(in_file_order, sorted(chosen))
        for model, extra in (("svm", ()), ("rf", ("--rf-n-estimators", "5")),
                             ("clustering", ("--clustering-algorithm", "k_means"))):
            with self.subTest(model=model):
                args = arguments.parse([
                    "--app-name", "BBHA_7", "--molecules-dataset", "BBHA_7/molecules.csv",
                    "--clinical-dataset", "BBHA_7/clinical.csv", "--cv-folds", "3",
                    "--random-state", "3", "--model", model, *extra])
                data = job.load(args, job.BBHA)
                spec = ModelSpec.from_arguments(args)
                mask = np.array([m in chosen for m in data.molecules])
                evaluator = SequentialEvaluator(spec, data)
                (evaluation,) = evaluator.evaluate([mask])
                outcome = bbha.Outcome(mask, evaluation.fitness,
                                       [bbha.Step(0, [mask], [evaluation])])
                self.assertEqual(job.finish(args, job.BBHA, data, spec,
                                            arguments.parameters_string(args), outcome,
                                            evaluation.fitness, time.monotonic(), evaluator),
                                 job.EXIT_OK)
                folder = os.path.join(self.results, "BBHA_7")
                summary = multiomix_reader.read(folder, molecules_csv, clinical_csv)
                self.assertEqual(summary["features"], sorted(chosen))
                self.assertTrue(summary["model_order_checked"])

                with open(os.path.join(folder, "model.pkl"), "rb") as f:
                    permuted = clone(pickle.load(f))
                X = frame.loc[in_file_order].T.to_numpy()
                if model == "clustering":
                    permuted.fit(X)
                else:
                    y = np.empty(len(X), dtype=[("event", bool), ("time", float)])
                    y["event"], y["time"] = clinical.iloc[:, 0].astype(bool), clinical.iloc[:, 1]
                    permuted.fit(X, y)
                with open(os.path.join(folder, "model.pkl"), "wb") as f:
                    pickle.dump(permuted, f)
                with self.assertRaises(multiomix_reader.ReadError) as caught:
                    multiomix_reader.read(folder, molecules_csv, clinical_csv)
                self.assertIn("sorted", str(caught.exception))

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
