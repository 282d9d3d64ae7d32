#!/usr/bin/env python3
"""Reads a results folder the way Multiomix's job-end view does, and fails loudly where
Multiomix would record an error or lose rows.

- result.json: `features` split on " | ", each identifier split with `rsplit('_', 1)`
  into NAME and TYPE, TYPE one of 1-4; `best_metric` a number;
- every other *.json: the kept keys loaded with `pandas.DataFrame.from_dict`, and
  `parameters` split on `_` and read by position for the model;
- model.pkl: unpickled, and used to predict on the selected molecules of the molecules
  file, in the order of `features` (clusterers without `predict` use `fit_predict`).

Usage: multiomix_reader.py RESULTS_FOLDER MOLECULES_CSV  (prints a JSON summary)
"""

import glob
import json
import os
import pickle
import sys

KEPT_KEYS = [
    "number_of_features", "execution_times", "fitness", "times_by_iteration", "test_times",
    "train_scores", "number_of_iterations", "number_of_samples", "parameters",
]
TYPES = {1: "mRNA", 2: "miRNA", 3: "CNA", 4: "methylation"}


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


def read(folder, molecules_csv):
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
            params = parse_parameters(model_name, row["parameters"])
            times.append({"fitness": float(row["fitness"]),
                          "number_of_features": int(row["number_of_features"]), **params})

    model_path = os.path.join(folder, "model.pkl")
    with open(model_path, "rb") as f:
        model = pickle.load(f)
    molecules = pd.read_csv(molecules_csv, sep="\t", index_col=0)
    X = molecules.loc[[identifier for identifier, _, _ in features]].T.to_numpy()
    if getattr(model, "n_features_in_", X.shape[1]) != X.shape[1]:
        raise ReadError(f"model.pkl expects {model.n_features_in_} features, result.json has {X.shape[1]}")
    predictions = model.predict(X) if hasattr(model, "predict") else model.fit_predict(X)
    if len(predictions) != X.shape[0]:
        raise ReadError("the model did not predict one value per sample")
    return {
        "features": [f[0] for f in features],
        "names": [f[1] for f in features],
        "types": [f[2] for f in features],
        "best_metric": best_metric,
        "model": model_name,
        "model_class": type(model).__name__,
        "times_rows": len(times),
        "parameters": times[0] if times else None,
        "predictions": len(predictions),
    }


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        summary = read(argv[1], argv[2])
    except Exception as e:
        print(f"multiomix reader: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print(json.dumps(summary, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
