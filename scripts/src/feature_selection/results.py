"""The result files, as Multiomix reads them from RESULTS_PATH/<app-name>/:

- `result.json`: `features` (the selected identifiers joined by " | "), `best_metric`,
  and `dataset`, `model`, `improved`, `best_metric_with_all_features`, `execution_time`;
- `times.json`: one entry per fitness evaluation in each list (`number_of_features`,
  `execution_times`, `fitness`, `times_by_iteration`, `test_times`, `train_scores`,
  `number_of_iterations`), scalars `number_of_samples` and `parameters` (the model's
  settings in Multiomix's positional form). Multiomix loads it with
  `pandas.DataFrame.from_dict`;
- `model.pkl`: the model fitted on the selected molecules, in their `features` order.

Everything is written into a hidden folder beside the destination and renamed into place
at the end, so a reader sees all of it or nothing, and a failed job leaves no result.json.
"""

import json
import os
import pickle
import shutil
from typing import Dict, List

DEFAULT_RESULTS_PATH = "/var/results"
FEATURES_SEPARATOR = " | "
RESULT_FILE = "result.json"
TIMES_FILE = "times.json"
MODEL_FILE = "model.pkl"
# Protocol 4 loads on every Python 3 Multiomix may run (3.8+ would take 5).
PICKLE_PROTOCOL = 4


def results_root() -> str:
    return os.path.abspath(os.environ.get("RESULTS_PATH") or DEFAULT_RESULTS_PATH)


def results_dir(app_name: str) -> str:
    return os.path.join(results_root(), app_name)


def _dump_json(path: str, value) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2, allow_nan=False)
        f.write("\n")


def write(app_name: str, result: Dict, times: Dict[str, object], model) -> str:
    """Writes the three files atomically; returns the results folder."""
    root = results_root()
    os.makedirs(root, exist_ok=True)
    final = os.path.join(root, app_name)
    staging = os.path.join(root, f".{app_name}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
    try:
        _dump_json(os.path.join(staging, TIMES_FILE), times)
        if model is not None:
            with open(os.path.join(staging, MODEL_FILE), "wb") as f:
                pickle.dump(model, f, protocol=PICKLE_PROTOCOL)
        _dump_json(os.path.join(staging, RESULT_FILE), result)
        if os.path.isdir(final):
            # A previous run of the same app name: set aside, then removed once the new
            # results are in place.
            old = os.path.join(root, f".{app_name}.old-{os.getpid()}")
            os.rename(final, old)
            os.rename(staging, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final


def features_field(identifiers: List[str]) -> str:
    return FEATURES_SEPARATOR.join(identifiers)
