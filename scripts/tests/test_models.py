"""The fitness models pinned to Multiomix's science (MULTIOMIX_JOBS.md, "The fitness" and
"The times file"): every expected figure is recomputed here by the libraries themselves
(scikit-survival, scikit-learn, lifelines) or worked out by hand, not taken from the job."""

import os
import sys
import unittest
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "src"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "examples", "datasets"))

from feature_selection import models  # noqa: E402
from feature_selection.models import ModelSpec  # noqa: E402

import generate  # noqa: E402


def planted(n_molecules=12, n_samples=60, seed=11):
    _, _, values, event, time_, _ = generate.generate(n_molecules, n_samples, 3, seed)
    return np.ascontiguousarray(values.T), event.astype(bool), time_.astype(float)


def survival(event, time_):
    y = np.empty(len(time_), dtype=[("event", bool), ("time", np.float64)])
    y["event"], y["time"] = event, time_
    return y


def stratified_folds(n_splits, random_state, event):
    from sklearn.model_selection import StratifiedKFold

    folds = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=random_state)
    return list(folds.split(np.zeros(len(event)), event))


class EstimatorParameterTests(unittest.TestCase):
    def test_the_forest_has_multiomix_settings_not_the_library_defaults(self):
        spec = ModelSpec(model="rf", rf_n_estimators=7, random_state=3)
        params = models.make_estimator(spec).get_params()
        want = dict(n_estimators=7, min_samples_split=10, min_samples_leaf=15,
                    max_features="sqrt", max_depth=None, random_state=3)
        self.assertEqual({k: params[k] for k in want}, want)

    def test_the_survival_svm_has_multiomix_settings(self):
        spec = ModelSpec(model="svm", svm_kernel="rbf", svm_max_iterations=500,
                         svm_is_regression=True, random_state=4)
        params = models.make_estimator(spec).get_params()
        want = dict(rank_ratio=0.0, max_iter=500, tol=1e-5, kernel="rbf",
                    optimizer="avltree", random_state=4)
        self.assertEqual({k: params[k] for k in want}, want)

    def test_clusterers_have_multiomix_settings(self):
        spec = ModelSpec(model="clustering", clustering_algorithm="k_means",
                         number_of_clusters=3, random_state=2)
        self.assertEqual(models.make_clusterer(spec).get_params()["n_init"], "auto")
        spectral = models.make_clusterer(
            ModelSpec(model="clustering", clustering_algorithm="spectral", random_state=2))
        from sklearn.cluster import SpectralClustering

        self.assertEqual(spectral.get_params()["assign_labels"],
                         SpectralClustering().get_params()["assign_labels"])

    def test_the_forest_fitness_is_the_mean_held_out_c_index_of_that_forest(self):
        from sksurv.ensemble import RandomSurvivalForest

        X, event, time_ = planted(n_samples=150)
        mask = np.zeros(X.shape[1], dtype=bool)
        mask[[0, 4, 5, 9]] = True
        spec = ModelSpec(model="rf", rf_n_estimators=5, cv_folds=3, random_state=8)
        self.assertGreater(len(event), 100)  # with fewer, leaves of 15 leave the trees bare
        got = models.evaluate(spec, X, event, time_, mask)
        y, subset, scores = survival(event, time_), X[:, mask], []
        for train, test in stratified_folds(3, 8, event):
            forest = RandomSurvivalForest(n_estimators=5, min_samples_split=10, min_samples_leaf=15,
                                          max_features="sqrt", max_depth=None, random_state=8)
            forest.fit(subset[train], y[train])
            scores.append(forest.score(subset[test], y[test]))
        self.assertEqual(got.error, None)
        self.assertAlmostEqual(got.fitness, float(np.mean(scores)), places=12)


class ClusteringFitnessTests(unittest.TestCase):
    def lifelines_score(self, X, event, time_, scoring_method, random_state):
        import pandas as pd
        from lifelines import CoxPHFitter
        from sklearn.cluster import KMeans

        labels = KMeans(n_clusters=2, random_state=random_state, n_init="auto").fit_predict(X)
        frame = pd.DataFrame({"E": event.astype(int), "T": time_, "cluster": labels})
        cph = CoxPHFitter().fit(frame, duration_col="T", event_col="E")
        return cph.score(frame, scoring_method=scoring_method), cph.log_likelihood_, len(frame)

    def test_the_fitness_is_lifelines_score_on_the_same_labels(self):
        X, event, time_ = planted(n_samples=80)
        mask = np.zeros(X.shape[1], dtype=bool)
        mask[[0, 4, 8]] = True
        for method in ("log_likelihood", "concordance_index"):
            with self.subTest(method=method):
                spec = ModelSpec(model="clustering", clustering_algorithm="k_means",
                                 number_of_clusters=2, clustering_scoring_method=method,
                                 random_state=5)
                got = models.evaluate(spec, X, event, time_, mask)
                want, total, n = self.lifelines_score(X[:, mask], event, time_, method, 5)
                self.assertAlmostEqual(got.fitness, want, places=9)
                if method == "log_likelihood":
                    # The mean per sample, not lifelines' total log_likelihood_.
                    self.assertAlmostEqual(want * n, total, places=6)
                    self.assertNotAlmostEqual(got.fitness, total, places=3)

    def test_a_cox_fit_that_does_not_converge_gives_minus_infinity(self):
        # Samples that are all alike fall into one cluster; a Cox regression on a constant
        # label cannot converge and lifelines raises ConvergenceError.
        from lifelines.exceptions import ConvergenceError

        rng = np.random.default_rng(3)
        X = np.ones((30, 2))
        event = rng.integers(0, 2, 30).astype(bool)
        time_ = rng.uniform(1.0, 10.0, 30)
        spec = ModelSpec(model="clustering", clustering_algorithm="k_means", random_state=0)
        with self.assertRaises(ConvergenceError):
            models.cox_score(spec, np.zeros(30), event, time_)
        got = models.evaluate(spec, X, event, time_, np.ones(2, dtype=bool))
        self.assertEqual(got.fitness, float("-inf"))
        self.assertTrue(got.error.startswith("ConvergenceError"), got.error)


class FoldWithoutComparablePairTests(unittest.TestCase):
    """A worked example: 15 samples, 3 events, 3 stratified folds, so one event per fold.
    In fold 0 the event is the latest time of its fold: no pair of that fold is comparable
    (a pair needs an event before another sample's time), so that fold scores 0.0 and the
    fitness is (0 + c1 + c2) / 3 with c1, c2 the other folds' C-indices."""

    def test_that_fold_scores_zero_and_the_evaluation_goes_on(self):
        from sksurv.svm import FastKernelSurvivalSVM

        rng = np.random.default_rng(4)
        X = rng.normal(size=(15, 3))
        event = np.zeros(15, dtype=bool)
        event[[1, 7, 12]] = True
        folds = stratified_folds(3, 6, event)
        time_ = rng.uniform(1.0, 50.0, size=15)
        test0 = folds[0][1]
        (only_event,) = [i for i in test0 if event[i]]
        time_[only_event] = 100.0  # after every other sample of its fold
        for _, test in folds[1:]:  # the other folds: their event comes first
            (e,) = [i for i in test if event[i]]
            time_[e] = 0.5
        spec = ModelSpec(model="svm", cv_folds=3, random_state=6, svm_max_iterations=100)
        got = models.evaluate(spec, X, event, time_, np.ones(3, dtype=bool))

        y, scores = survival(event, time_), []
        for k, (train, test) in enumerate(folds):
            svm = FastKernelSurvivalSVM(rank_ratio=1.0, max_iter=100, tol=1e-5, kernel="linear",
                                        optimizer="avltree", random_state=6)
            svm.fit(X[train], y[train])
            if k == 0:
                from sksurv.exceptions import NoComparablePairException

                with self.assertRaises(NoComparablePairException):
                    svm.score(X[test], y[test])
                scores.append(0.0)
            else:
                scores.append(svm.score(X[test], y[test]))
        self.assertIsNone(got.error)
        self.assertAlmostEqual(got.fitness, sum(scores) / 3, places=12)
        self.assertGreater(got.fitness, 0.0)


class TimesOfAnEvaluationTests(unittest.TestCase):
    def test_svm_iterations_are_the_mean_optimizer_iterations_over_the_folds(self):
        from sksurv.svm import FastKernelSurvivalSVM

        X, event, time_ = planted(n_samples=60)
        mask = np.zeros(X.shape[1], dtype=bool)
        mask[[0, 2, 4, 6, 8]] = True
        spec = ModelSpec(model="svm", cv_folds=3, random_state=2)
        got = models.evaluate(spec, X, event, time_, mask)
        y, nits, trains = survival(event, time_), [], []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for train, test in stratified_folds(3, 2, event):
                svm = FastKernelSurvivalSVM(rank_ratio=1.0, max_iter=1000, tol=1e-5,
                                            kernel="linear", optimizer="avltree", random_state=2)
                svm.fit(X[train][:, mask], y[train])
                nits.append(svm.optimizer_result_.nit)
                trains.append(svm.score(X[train][:, mask], y[train]))
        self.assertGreater(min(nits), 1)
        self.assertAlmostEqual(got.iterations, float(np.mean(nits)), places=12)
        self.assertAlmostEqual(got.train_score, float(np.mean(trains)), places=12)
        # Fit time per optimizer iteration, and one fold's scoring: each less than the whole.
        self.assertGreater(got.seconds_per_iteration, 0.0)
        self.assertLess(got.seconds_per_iteration * min(nits), got.seconds)
        self.assertGreater(got.test_seconds, 0.0)
        self.assertLess(got.test_seconds * 3, got.seconds)

    def test_rf_and_clustering_have_no_optimizer_iterations(self):
        X, event, time_ = planted()
        mask = np.ones(X.shape[1], dtype=bool)
        rf = models.evaluate(ModelSpec(model="rf", cv_folds=3, random_state=1), X, event, time_, mask)
        self.assertEqual((rf.iterations, rf.seconds_per_iteration), (0, 0.0))
        self.assertGreater(rf.test_seconds, 0.0)
        clustering = models.evaluate(ModelSpec(model="clustering", random_state=1), X, event, time_, mask)
        self.assertEqual((clustering.iterations, clustering.seconds_per_iteration), (0, 0.0))
        self.assertEqual((clustering.test_seconds, clustering.train_score), (0.0, 0.0))
        self.assertGreater(clustering.seconds, 0.0)


if __name__ == "__main__":
    unittest.main()
