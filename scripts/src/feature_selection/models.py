"""The fitness models and the fitness of one subset of molecules.

- svm: scikit-survival's `FastKernelSurvivalSVM`, rf: `RandomSurvivalForest`. The fitness
  is the mean concordance index (C-index) over a cross-validation stratified on the event.
- clustering: the samples are clustered on the subset (k-means, spectral, bisecting
  k-means or ward), then a Cox regression (lifelines) of survival on the cluster label is
  scored by its C-index or its log-likelihood.

Both are maximised. Everything here is plain Python: the BBHA and Blind Search code calls
`evaluate` through an evaluator, sequentially or as Spark tasks.
"""

import time
import warnings
from dataclasses import dataclass
from typing import Optional

import numpy as np

from .arguments import JobArguments


@dataclass(frozen=True)
class ModelSpec:
    """What a fitness evaluation needs to know besides the data; small and picklable."""

    model: str
    cv_folds: int = 10
    svm_kernel: str = "linear"
    svm_optimizer: str = "avltree"
    svm_max_iterations: int = 1000
    svm_is_regression: bool = False
    rf_n_estimators: int = 10
    clustering_algorithm: str = "k_means"
    number_of_clusters: int = 2
    clustering_scoring_method: str = "log_likelihood"
    random_state: Optional[int] = None

    @classmethod
    def from_arguments(cls, args: JobArguments) -> "ModelSpec":
        return cls(
            model=args.model,
            cv_folds=args.cv_folds,
            svm_kernel=args.svm_kernel,
            svm_optimizer=args.svm_optimizer,
            svm_max_iterations=args.svm_max_iterations,
            svm_is_regression=args.svm_is_regression,
            rf_n_estimators=args.rf_n_estimators,
            clustering_algorithm=args.clustering_algorithm,
            number_of_clusters=args.number_of_clusters,
            clustering_scoring_method=args.clustering_scoring_method,
            random_state=args.random_state,
        )


@dataclass(frozen=True)
class Evaluation:
    """One fitness evaluation, with what the times file records of it."""

    fitness: float  # -inf when the model could not be fitted
    n_features: int
    seconds: float  # the whole evaluation
    test_seconds: float  # scoring the held-out folds (or the Cox fit, for clustering)
    train_score: float  # mean score on the training folds (the fitness, for clustering)
    error: Optional[str] = None


def make_estimator(spec: ModelSpec):
    """An unfitted estimator of the spec's model."""
    if spec.model == "svm":
        from sksurv.svm import FastKernelSurvivalSVM

        return FastKernelSurvivalSVM(
            rank_ratio=0.0 if spec.svm_is_regression else 1.0,
            max_iter=spec.svm_max_iterations,
            kernel=spec.svm_kernel,
            optimizer=spec.svm_optimizer,
            random_state=spec.random_state,
        )
    if spec.model == "rf":
        from sksurv.ensemble import RandomSurvivalForest

        return RandomSurvivalForest(
            n_estimators=spec.rf_n_estimators, random_state=spec.random_state, n_jobs=1
        )
    return make_clusterer(spec)


def make_clusterer(spec: ModelSpec):
    from sklearn import cluster

    k = spec.number_of_clusters
    algorithm = spec.clustering_algorithm
    if algorithm == "k_means":
        return cluster.KMeans(n_clusters=k, n_init=10, random_state=spec.random_state)
    if algorithm == "bk_means":
        return cluster.BisectingKMeans(n_clusters=k, random_state=spec.random_state)
    if algorithm == "spectral":
        return cluster.SpectralClustering(
            n_clusters=k, random_state=spec.random_state, assign_labels="discretize"
        )
    if algorithm == "ward":
        return cluster.AgglomerativeClustering(n_clusters=k, linkage="ward")
    raise ValueError(f"unknown clustering algorithm {algorithm!r}")


def _cross_validated(spec: ModelSpec, X: np.ndarray, y: np.ndarray):
    from sklearn.model_selection import StratifiedKFold

    folds = StratifiedKFold(
        n_splits=spec.cv_folds,
        shuffle=True,
        random_state=spec.random_state if spec.random_state is not None else 0,
    )
    tests, trains, test_seconds = [], [], 0.0
    for train, test in folds.split(X, y["event"]):
        estimator = make_estimator(spec)
        estimator.fit(X[train], y[train])
        started = time.perf_counter()
        tests.append(estimator.score(X[test], y[test]))
        test_seconds += time.perf_counter() - started
        trains.append(estimator.score(X[train], y[train]))
    return float(np.mean(tests)), float(np.mean(trains)), test_seconds


def cox_score(spec: ModelSpec, labels: np.ndarray, event: np.ndarray, time_: np.ndarray):
    """Fits a Cox regression of survival on the cluster labels and scores it."""
    import pandas as pd
    from lifelines import CoxPHFitter

    frame = pd.DataFrame({"cluster": labels.astype(float), "T": time_, "E": event.astype(int)})
    cph = CoxPHFitter()
    cph.fit(frame, duration_col="T", event_col="E")
    if spec.clustering_scoring_method == "concordance_index":
        return float(cph.concordance_index_)
    return float(cph.log_likelihood_)


def _clustered(spec: ModelSpec, X: np.ndarray, event: np.ndarray, time_: np.ndarray):
    labels = make_clusterer(spec).fit_predict(X)
    if len(np.unique(labels)) < 2:
        raise ValueError("the samples fell into a single cluster")
    started = time.perf_counter()
    score = cox_score(spec, labels, event, time_)
    return score, score, time.perf_counter() - started


def evaluate(spec: ModelSpec, X: np.ndarray, event: np.ndarray, time_: np.ndarray, mask) -> Evaluation:
    """The fitness of the molecules `mask` selects (a boolean array over X's columns)."""
    from threadpoolctl import threadpool_limits

    columns = np.flatnonzero(np.asarray(mask, dtype=bool))
    started = time.perf_counter()
    if len(columns) == 0:
        return Evaluation(float("-inf"), 0, 0.0, 0.0, float("nan"), "no molecule selected")
    subset = X[:, columns]
    # One thread per evaluation: parallelism comes from running evaluations side by side.
    with threadpool_limits(limits=1), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            if spec.model == "clustering":
                fitness, train, test_seconds = _clustered(spec, subset, event, time_)
            else:
                y = np.empty(len(time_), dtype=[("event", bool), ("time", np.float64)])
                y["event"], y["time"] = event, time_
                fitness, train, test_seconds = _cross_validated(spec, subset, y)
            if not np.isfinite(fitness):
                raise ValueError(f"the fitness is {fitness}")
            error = None
        except Exception as e:  # a subset the model cannot fit loses, it does not end the job
            fitness, train, test_seconds, error = float("-inf"), float("nan"), 0.0, f"{type(e).__name__}: {e}"
    return Evaluation(
        fitness=fitness,
        n_features=len(columns),
        seconds=time.perf_counter() - started,
        test_seconds=test_seconds,
        train_score=train,
        error=error,
    )


def fit_final(spec: ModelSpec, X: np.ndarray, event: np.ndarray, time_: np.ndarray, mask):
    """The model Multiomix stores: fitted on all samples, on the selected molecules."""
    subset = X[:, np.flatnonzero(np.asarray(mask, dtype=bool))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if spec.model == "clustering":
            return make_clusterer(spec).fit(subset)
        y = np.empty(len(time_), dtype=[("event", bool), ("time", np.float64)])
        y["event"], y["time"] = event, time_
        return make_estimator(spec).fit(subset, y)
