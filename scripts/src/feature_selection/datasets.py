"""Where the datasets are and how they are read.

Dataset arguments are paths relative to DATASETS_PATH (Multiomix sends
`<app-name>/molecules.csv`). Both comma- and tab-separated files are accepted, since
Multiomix users upload both; the first line decides.
"""

import os
from typing import List, Tuple

DEFAULT_DATASETS_PATH = "/var/data"


class DatasetError(Exception):
    """A dataset is missing or unusable; the message names it."""


def datasets_root() -> str:
    return os.environ.get("DATASETS_PATH") or DEFAULT_DATASETS_PATH


def resolve(relative: str) -> str:
    """The absolute path of a dataset argument, which must name an existing file."""
    root = os.path.abspath(datasets_root())
    path = os.path.normpath(os.path.join(root, relative))
    if not os.path.isfile(path):
        raise DatasetError(f"dataset {relative!r} not found (looked for {path})")
    return path


def header(path: str) -> Tuple[str, List[str]]:
    """The separator and the column names, read from the first line."""
    with open(path, "r", encoding="utf-8", newline="") as f:
        first = f.readline().rstrip("\r\n")
    if not first:
        raise DatasetError(f"dataset {path} is empty")
    sep = "\t" if "\t" in first else ","
    columns = [c.strip().strip('"') for c in first.split(sep)]
    if len(columns) < 2:
        raise DatasetError(f"dataset {path} has fewer than two columns")
    if len(set(columns)) != len(columns):
        raise DatasetError(f"dataset {path} has duplicated column names")
    return sep, columns


def read_csv(spark, path: str):
    """Reads a dataset with every column as text; callers cast what they need."""
    sep, _ = header(path)
    return spark.read.csv("file://" + path, header=True, sep=sep, inferSchema=False)
