#!/usr/bin/env python3
"""Reads a results folder the way Multiomix's job-end view does, and fails loudly where
Multiomix would record an error or lose rows, or where its model would predict wrong.

- result.json: `features` split on " | ", each identifier split with `rsplit('_', 1)`
  into NAME and TYPE, TYPE one of 1-4; `best_metric` a number;
- every other *.json: the kept keys loaded with `pandas.DataFrame.from_dict`, and
  `parameters` split on `_` and read by position for the model;
- model.pkl: unpickled, and used as Multiomix uses it: its columns are
  `np.intersect1d(molecules_df.index, features)` (the selected identifiers, sorted), and
  it is asked to `predict` (clusterers without `predict`, spectral and ward, cannot be
  used for inference there: reported, not an error).

With the clinical file too, it checks the science against the libraries, written here
from MULTIOMIX_JOBS.md and not taken from the job: it builds Multiomix's estimator from
the parameters string and result.json's random_state (and cv_folds), and
- the stored model has those parameters, and predicts exactly as that estimator fitted on
  all samples with the columns in sorted order (a model fitted in another column order
  fails here);
- `best_metric` is the fitness recomputed on the selected molecules: the mean held-out
  `score()` over the same stratified folds (a fold without a comparable pair scores 0.0),
  or lifelines' `CoxPHFitter.score` of the clusters;
- a times row has that fitness and number of molecules, and for svm the mean optimizer
  iterations over the folds (rf and clustering: 0).

Usage: multiomix_reader.py RESULTS_FOLDER MOLECULES_CSV [CLINICAL_CSV]  (prints a JSON summary)
"""

import glob
import json
import os
import pickle
import sys
import warnings

KEPT_KEYS = [
    "number_of_features", "execution_times", "fitness", "times_by_iteration", "test_times",
    "train_scores", "number_of_iterations", "number_of_samples", "parameters",
]
TYPES = {1: "mRNA", 2: "miRNA", 3: "CNA", 4: "methylation"}
TOLERANCE = 1e-9


class ReadError(Exception):
    pass


def parse_features(text):
    out = []
    for identifier in text.split(" | "):
        parts = identifier.rsplit("_", 1)
        if len(parts) != 2 or not parts[0]:
            raise ReadError(f"feature {identifier!r} is not NAME_TYPE")
        name, kind = parts
        try:
            kind = int(kind)
        except ValueError:
            raise ReadError(f"feature {identifier!r}: TYPE {kind!r} is not a number") from None
        if kind not in TYPES:
            raise ReadError(f"feature {identifier!r}: TYPE {kind} is not 1-4")
        out.append((identifier, name, kind))
    return out


def parse_parameters(model, parameters):
    p = parameters.split("_")
    if model == "svm":
        return {"task": p[0], "max_iterations": int(p[1]), "optimizer": p[4], "kernel": p[6]}
    if model == "rf":
        return {"n_estimators": int(p[0])}
    if model == "clustering":
        return {
            "n_clusters": int(p[0]),
            "algorithm": p[2].replace("-", "_"),
            "scoring_method": p[4].replace("-", "_"),
        }
    raise ReadError(f"unknown model {model!r}")


def multiomix_estimator(model, params, random_state):
    """The estimator Multiomix builds for these parameters (MULTIOMIX_JOBS.md)."""
    if model == "svm":
        from sksurv.svm import FastKernelSurvivalSVM

        return FastKernelSurvivalSVM(
            rank_ratio=0.0 if params["task"] == "regression" else 1.0,
            max_iter=params["max_iterations"], tol=1e-5, kernel=params["kernel"],
            optimizer=params["optimizer"], random_state=random_state)
    if model == "rf":
        from sksurv.ensemble import RandomSurvivalForest

        return RandomSurvivalForest(
            n_estimators=params["n_estimators"], min_samples_split=10, min_samples_leaf=15,
            max_features="sqrt", max_depth=None, random_state=random_state)
    from sklearn import cluster

    k, algorithm = params["n_clusters"], params["algorithm"]
    if algorithm == "k_means":
        return cluster.KMeans(n_clusters=k, random_state=random_state, n_init="auto")
    if algorithm == "spectral":
        return cluster.SpectralClustering(n_clusters=k, random_state=random_state)
    if algorithm == "bk_means":
        return cluster.BisectingKMeans(n_clusters=k, random_state=random_state)
    if algorithm == "ward":
        return cluster.AgglomerativeClustering(n_clusters=k, linkage="ward")
    raise ReadError(f"unknown clustering algorithm {algorithm!r}")


def _c_index(estimator, X, y):
    from sksurv.exceptions import NoComparablePairException

    if not y["event"].any():
        return 0.0
    try:
        return float(estimator.score(X, y))
    except NoComparablePairException:
        return 0.0


def _labels(clusterer, X):
    return clusterer.predict(X) if hasattr(clusterer, "predict") else clusterer.labels_


def check_science(model_name, params, result, model, X, event, time_):
    """Recomputes the model, the fitness and the times figures; returns them."""
    import numpy as np
    from sklearn.base import clone

    random_state = result.get("random_state")
    reference = multiomix_estimator(model_name, params, random_state)
    ours, theirs = reference.get_params(), model.get_params()
    differ = {k: (theirs.get(k), v) for k, v in ours.items() if k != "n_jobs" and theirs.get(k) != v}
    if differ:
        raise ReadError(f"model.pkl's parameters are not Multiomix's: {differ} (stored, expected)")
    y = np.empty(len(time_), dtype=[("event", bool), ("time", np.float64)])
    y["event"], y["time"] = event, time_
    checked_order = random_state is not None or model_name == "svm"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if checked_order:
            refit = clone(reference)
            if model_name == "clustering":
                refit.fit(X)
                same = np.array_equal(_labels(refit, X), _labels(model, X))
            else:
                refit.fit(X, y)
                same = np.allclose(refit.predict(X), model.predict(X), rtol=1e-7, atol=1e-9)
            if not same:
                raise ReadError("model.pkl does not predict as Multiomix's estimator fitted on "
                                "the features in np.intersect1d (sorted) order")
        nits = []
        if model_name == "clustering":
            import pandas as pd
            from lifelines import CoxPHFitter

            labels = clone(reference).fit_predict(X)
            frame = pd.DataFrame({"E": event.astype(int), "T": time_, "cluster": labels})
            cph = CoxPHFitter().fit(frame, duration_col="T", event_col="E")
            fitness = float(cph.score(frame, scoring_method=params["scoring_method"]))
        else:
            from sklearn.model_selection import StratifiedKFold

            folds = StratifiedKFold(n_splits=int(result["cv_folds"]), shuffle=True,
                                    random_state=random_state if random_state is not None else 0)
            scores = []
            for train, test in folds.split(X, event):
                estimator = clone(reference).fit(X[train], y[train])
                scores.append(_c_index(estimator, X[test], y[test]))
                if model_name == "svm":
                    nits.append(estimator.optimizer_result_.nit)
            fitness = float(np.mean(scores))
    if abs(fitness - float(result["best_metric"])) > TOLERANCE:
        raise ReadError(f"best_metric {result['best_metric']} is not the fitness the libraries "
                        f"compute on the selected molecules, {fitness}")
    iterations = float(np.mean(nits)) if nits else 0.0
    return {"recomputed_fitness": fitness, "recomputed_iterations": iterations,
            "model_order_checked": checked_order}


def read(folder, molecules_csv, clinical_csv=None):
    import numpy as np
    import pandas as pd

    path = os.path.join(folder, "result.json")
    if not os.path.isfile(path):
        raise ReadError(f"{path} is missing: FINISHED_WITH_ERROR")
    with open(path) as f:
        result = json.load(f)
    features = parse_features(result["features"])
    best_metric = float(result["best_metric"])
    model_name = result.get("model")

    times = []
    for other in sorted(glob.glob(os.path.join(folder, "*.json"))):
        if os.path.basename(other) == "result.json":
            continue
        with open(other) as f:
            content = json.load(f)
        kept = {k: v for k, v in content.items() if k in KEPT_KEYS}
        frame = pd.DataFrame.from_dict(kept)
        for _, row in frame.iterrows():
            parse_parameters(model_name, row["parameters"])  # fails as Multiomix would
            times.append({k: row[k] for k in KEPT_KEYS if k in row})

    model_path = os.path.join(folder, "model.pkl")
    with open(model_path, "rb") as f:
        model = pickle.load(f)
    molecules = pd.read_csv(molecules_csv, sep="\t", index_col=0)
    identifiers = [identifier for identifier, _, _ in features]
    # Multiomix's columns: the selected identifiers present in the data, sorted.
    columns = np.intersect1d(molecules.index, identifiers)
    if len(columns) != len(identifiers):
        raise ReadError(f"{len(identifiers) - len(columns)} features are not in {molecules_csv}")
    X = molecules.loc[columns].T.to_numpy()
    if getattr(model, "n_features_in_", X.shape[1]) != X.shape[1]:
        raise ReadError(f"model.pkl expects {model.n_features_in_} features, result.json has {X.shape[1]}")
    inference = hasattr(model, "predict")
    if inference:
        predictions = model.predict(X)
        if len(predictions) != X.shape[0]:
            raise ReadError("the model did not predict one value per sample")

    summary = {
        "features": identifiers,
        "features_sorted": identifiers == list(columns),
        "names": [f[1] for f in features],
        "types": [f[2] for f in features],
        "best_metric": best_metric,
        "model": model_name,
        "model_class": type(model).__name__,
        "times_rows": len(times),
        "parameters": parse_parameters(model_name, times[0]["parameters"]) if times else None,
        "inference": inference,
        "predictions": X.shape[0] if inference else None,
    }
    if clinical_csv is not None:
        clinical = pd.read_csv(clinical_csv, sep="\t", index_col=0)
        samples = [s for s in molecules.columns if s in set(clinical.index)]
        X = molecules.loc[columns, samples].T.to_numpy(dtype=float)
        event = clinical.loc[samples].iloc[:, 0].to_numpy().astype(bool)
        time_ = clinical.loc[samples].iloc[:, 1].to_numpy(dtype=float)
        if not times:
            raise ReadError("no times row to take the model's parameters from")
        params = parse_parameters(model_name, times[0]["parameters"])
        science = check_science(model_name, params, result, model, X, event, time_)
        rows = [r for r in times
                if abs(float(r["fitness"]) - science["recomputed_fitness"]) <= TOLERANCE
                and int(r["number_of_features"]) == len(identifiers)]
        if not rows:
            raise ReadError("no times row has the selected subset's fitness and size")
        if not any(abs(float(r["number_of_iterations"]) - science["recomputed_iterations"]) <= TOLERANCE
                   for r in rows):
            raise ReadError(f"the selected subset's times rows give {[r['number_of_iterations'] for r in rows]} "
                            f"optimizer iterations; the folds take {science['recomputed_iterations']}")
        summary.update(science)
        summary["best_row"] = {k: rows[0][k] for k in KEPT_KEYS if k in rows[0] and k != "parameters"}
    return summary


def main(argv):
    if len(argv) not in (3, 4):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        summary = read(*argv[1:])
    except Exception as e:
        print(f"multiomix reader: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print(json.dumps(summary, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
