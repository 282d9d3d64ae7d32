"""Writing results under RESULTS_PATH/<app-name>/.

`result.csv` holds the ranking (rank, molecule, score); `summary.json` says how it was
made. Files are written to a temporary name and renamed, so a reader never sees half a
file.
"""

import csv
import json
import os
from typing import Dict, List, Tuple

DEFAULT_RESULTS_PATH = "/var/results"


def results_dir(app_name: str) -> str:
    root = os.environ.get("RESULTS_PATH") or DEFAULT_RESULTS_PATH
    return os.path.join(os.path.abspath(root), app_name)


def _replace(path: str, write) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        write(f)
    os.replace(tmp, path)


def write(app_name: str, ranking: List[Tuple[str, float, int]], summary: Dict) -> str:
    """Writes both files and returns the directory they are in."""
    out = results_dir(app_name)
    os.makedirs(out, exist_ok=True)

    def ranking_csv(f) -> None:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["rank", "molecule", "score", "samples"])
        for i, (molecule, score, n) in enumerate(ranking, start=1):
            w.writerow([i, molecule, f"{score:.6g}", n])

    def summary_json(f) -> None:
        json.dump(summary, f, indent=2, sort_keys=True)
        f.write("\n")

    _replace(os.path.join(out, "result.csv"), ranking_csv)
    _replace(os.path.join(out, "summary.json"), summary_json)
    return out
