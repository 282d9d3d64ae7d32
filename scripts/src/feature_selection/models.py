"""The fitness models and the fitness of one subset of molecules, as Multiomix computes
them (MULTIOMIX_JOBS.md, "The fitness" and "The times file").

- svm: scikit-survival's `FastKernelSurvivalSVM`, rf: `RandomSurvivalForest`, with
  Multiomix's settings. The fitness is the mean over the folds of the estimator's `score()`
  (Harrell's C-index) on the held-out fold, the folds stratified on the event and shuffled
  with a seed from random-state. A fold without a comparable pair scores 0.0.
- clustering: the samples are clustered on the subset (k-means, spectral, bisecting
  k-means or ward), then a lifelines Cox regression of survival on the cluster label is
  scored with `CoxPHFitter.score` (C-index, or the mean partial log-likelihood per sample).

Both are maximised. The work is cut into units, so Spark can spread them: one unit per
(subset, fold) for svm and rf, one per subset for clustering. `fold_plan` gives the folds,
`evaluate_fold` scores one unit, `combine` turns a subset's units into its `Evaluation`;
`evaluate` is exactly `combine` of every unit run here, one after another.
"""

import time
import warnings
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

from .arguments import JobArguments

# (train rows, test rows) of one cross-validation fold.
Fold = Tuple[np.ndarray, np.ndarray]


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
class UnitResult:
    """One unit of an evaluation: one fold (svm, rf) or the whole clustering."""

    test_score: float  # the held-out fold's C-index; for clustering, the Cox score
    train_score: float  # the training folds' score (0.0 for clustering)
    fit_seconds: float
    test_seconds: float  # scoring the held-out fold (0.0 for clustering)
    iterations: int  # the svm optimizer's iterations (optimizer_result_.nit); 0 otherwise
    seconds: float  # the whole unit
    error: Optional[str] = None


@dataclass(frozen=True)
class Evaluation:
    """One fitness evaluation, with what its row of the times file records."""

    fitness: float  # -inf when the model could not be fitted
    n_features: int
    seconds: float  # the whole evaluation (the sum of its units)
    test_seconds: float  # mean scoring time of one held-out fold (clustering 0.0)
    train_score: float  # mean training-fold score (clustering 0.0)
    iterations: float = 0.0  # svm: mean optimizer iterations over the folds; else 0
    seconds_per_iteration: float = 0.0  # svm: mean over the folds of fit time / iterations
    error: Optional[str] = None


def make_estimator(spec: ModelSpec):
    """An unfitted estimator of the spec's model, with Multiomix's settings."""
    if spec.model == "svm":
        from sksurv.svm import FastKernelSurvivalSVM

        return FastKernelSurvivalSVM(
            rank_ratio=0.0 if spec.svm_is_regression else 1.0,
            max_iter=spec.svm_max_iterations,
            tol=1e-5,
            kernel=spec.svm_kernel,
            optimizer=spec.svm_optimizer,
            random_state=spec.random_state,
        )
    if spec.model == "rf":
        from sksurv.ensemble import RandomSurvivalForest

        return RandomSurvivalForest(
            n_estimators=spec.rf_n_estimators,
            min_samples_split=10,
            min_samples_leaf=15,
            max_features="sqrt",
            max_depth=None,
            random_state=spec.random_state,
            n_jobs=1,
        )
    return make_clusterer(spec)


def make_clusterer(spec: ModelSpec):
    """Multiomix's clusterers; spectral and ward have no `predict` (see docs/jobs.md)."""
    from sklearn import cluster

    k = spec.number_of_clusters
    algorithm = spec.clustering_algorithm
    if algorithm == "k_means":
        return cluster.KMeans(n_clusters=k, random_state=spec.random_state, n_init="auto")
    if algorithm == "bk_means":
        return cluster.BisectingKMeans(n_clusters=k, random_state=spec.random_state)
    if algorithm == "spectral":
        return cluster.SpectralClustering(n_clusters=k, random_state=spec.random_state)
    if algorithm == "ward":
        return cluster.AgglomerativeClustering(n_clusters=k, linkage="ward")
    raise ValueError(f"unknown clustering algorithm {algorithm!r}")


def survival_array(event: np.ndarray, time_: np.ndarray) -> np.ndarray:
    y = np.empty(len(time_), dtype=[("event", bool), ("time", np.float64)])
    y["event"], y["time"] = event, time_
    return y


def fold_plan(spec: ModelSpec, event: np.ndarray) -> List[Optional[Fold]]:
    """The units of one evaluation: its folds (svm, rf), or one unit without folds
    (clustering). The same for every subset of a job, and the same for the same
    random-state: stratified on the event and shuffled, seed 0 when none is given."""
    if spec.model == "clustering":
        return [None]
    from sklearn.model_selection import StratifiedKFold

    folds = StratifiedKFold(
        n_splits=spec.cv_folds,
        shuffle=True,
        random_state=spec.random_state if spec.random_state is not None else 0,
    )
    return [(train, test) for train, test in folds.split(np.zeros(len(event)), event)]


def _c_index(estimator, X: np.ndarray, y: np.ndarray) -> float:
    """The estimator's `score()`; 0.0 when no pair of these samples is comparable (no
    event, or every event after every other time), as Multiomix scores such a fold."""
    from sksurv.exceptions import NoComparablePairException

    if not y["event"].any():
        return 0.0
    try:
        return float(estimator.score(X, y))
    except NoComparablePairException:
        return 0.0


def _fold(spec: ModelSpec, subset: np.ndarray, y: np.ndarray, fold: Fold) -> UnitResult:
    train, test = fold
    estimator = make_estimator(spec)
    started = time.perf_counter()
    estimator.fit(subset[train], y[train])
    fit_seconds = time.perf_counter() - started
    started = time.perf_counter()
    test_score = _c_index(estimator, subset[test], y[test])
    test_seconds = time.perf_counter() - started
    train_score = _c_index(estimator, subset[train], y[train])
    iterations = int(estimator.optimizer_result_.nit) if spec.model == "svm" else 0
    return UnitResult(test_score, train_score, fit_seconds, test_seconds, iterations, 0.0)


def cox_score(spec: ModelSpec, labels: np.ndarray, event: np.ndarray, time_: np.ndarray) -> float:
    """Fits a Cox regression of survival on the cluster labels and scores it on the same
    samples with `CoxPHFitter.score` (log-likelihood: the mean per sample)."""
    import pandas as pd
    from lifelines import CoxPHFitter

    frame = pd.DataFrame({"E": event.astype(int), "T": time_, "cluster": labels.astype(float)})
    cph = CoxPHFitter().fit(frame, duration_col="T", event_col="E")
    return float(cph.score(frame, scoring_method=spec.clustering_scoring_method))


def _clustering(spec: ModelSpec, subset: np.ndarray, event: np.ndarray, time_: np.ndarray) -> UnitResult:
    started = time.perf_counter()
    labels = make_clusterer(spec).fit_predict(subset)
    # One cluster only: lifelines raises ConvergenceError, and the subset scores -inf.
    score = cox_score(spec, labels, event, time_)
    return UnitResult(score, 0.0, time.perf_counter() - started, 0.0, 0, 0.0)


def one_thread():
    """A context in which the numeric libraries use one thread. Entering it costs a few
    milliseconds (it inspects the loaded libraries): once per evaluation or task, not per
    unit."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)


def evaluate_fold(
    spec: ModelSpec,
    X: np.ndarray,
    event: np.ndarray,
    time_: np.ndarray,
    columns: np.ndarray,
    fold: Optional[Fold],
) -> UnitResult:
    """Scores one unit: the molecules `columns` (indices into X's columns) on one fold,
    or clustered (fold None). Copies only the subset it needs from X, which may be a
    read-only memory map. Never raises: a unit that fails carries its error. Run it under
    `one_thread()` (evaluate and the Spark tasks do): parallelism comes from running
    units side by side, not from threads inside one."""
    started = time.perf_counter()
    columns = np.asarray(columns, dtype=np.intp)
    if len(columns) == 0:
        return UnitResult(float("-inf"), 0.0, 0.0, 0.0, 0, 0.0, "no molecule selected")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            # One C-order copy of the subset's columns, whatever X's layout (a column-major
            # memory map on Spark): the same array, so the same result, as in this process.
            subset = np.empty((X.shape[0], len(columns)), dtype=np.float64)
            np.take(X, columns, axis=1, out=subset)
            if fold is None:
                result = _clustering(spec, subset, event, time_)
            else:
                result = _fold(spec, subset, survival_array(event, time_), fold)
            if not np.isfinite(result.test_score):
                raise ValueError(f"the score is {result.test_score}")
        except Exception as e:  # a subset the model cannot fit loses, it does not end the job
            return UnitResult(float("-inf"), 0.0, 0.0, 0.0, 0, time.perf_counter() - started,
                              f"{type(e).__name__}: {e}")
    return UnitResult(result.test_score, result.train_score, result.fit_seconds,
                      result.test_seconds, result.iterations, time.perf_counter() - started)


def combine(spec: ModelSpec, n_features: int, units: Sequence[UnitResult]) -> Evaluation:
    """A subset's Evaluation from its units, in fold order: the fitness is the mean of
    the held-out scores; any failed unit makes it -inf."""
    seconds = float(sum(u.seconds for u in units))
    failed = next((u.error for u in units if u.error), None)
    if failed is not None or not units:
        return Evaluation(float("-inf"), n_features, seconds, 0.0, 0.0, 0.0, 0.0,
                          failed or "no unit was evaluated")
    if spec.model == "clustering":
        return Evaluation(units[0].test_score, n_features, seconds, 0.0, 0.0, 0.0, 0.0)
    svm = spec.model == "svm"
    return Evaluation(
        fitness=float(np.mean([u.test_score for u in units])),
        n_features=n_features,
        seconds=seconds,
        test_seconds=float(np.mean([u.test_seconds for u in units])),
        train_score=float(np.mean([u.train_score for u in units])),
        iterations=float(np.mean([u.iterations for u in units])) if svm else 0.0,
        seconds_per_iteration=(
            float(np.mean([u.fit_seconds / max(u.iterations, 1) for u in units])) if svm else 0.0
        ),
    )


def evaluate(
    spec: ModelSpec,
    X: np.ndarray,
    event: np.ndarray,
    time_: np.ndarray,
    mask,
    plan: Optional[List[Optional[Fold]]] = None,
) -> Evaluation:
    """The fitness of the molecules `mask` selects (a boolean array over X's columns)."""
    columns = np.flatnonzero(np.asarray(mask, dtype=bool))
    plan = fold_plan(spec, event) if plan is None else plan
    with one_thread():
        units = [evaluate_fold(spec, X, event, time_, columns, fold) for fold in plan]
    return combine(spec, len(columns), units)


def fit_final(spec: ModelSpec, X: np.ndarray, event: np.ndarray, time_: np.ndarray, mask):
    """The model the job stores: refitted on all samples, on the selected molecules in
    X's column order (the job reads the molecules sorted by identifier, the order
    Multiomix's `np.intersect1d` gives when it predicts)."""
    subset = X[:, np.flatnonzero(np.asarray(mask, dtype=bool))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if spec.model == "clustering":
            return make_clusterer(spec).fit(subset)
        return make_estimator(spec).fit(subset, survival_array(event, time_))
