"""The two input files, read and checked before Spark starts.

Multiomix writes them with pandas `to_csv(sep='\\t')`, index included:
- molecules: one row per molecule (`NAME_TYPE` identifiers), one column per sample;
- clinical: one row per sample, two columns, event (0/1) first and time second.
A comma-separated file is read too (the first line decides). Anything that would make
the fitness meaningless or crash it later is a `DatasetError` naming the file and the
problem; the job exits 3 on it. Its message reaches the job's `stateDetails`, so it says
where in the file a problem is (line and field, counted from 1 as an editor does), never
what the file holds: no identifier, column name or value is quoted.
"""

import os
from dataclasses import dataclass
from typing import List

import numpy as np

DEFAULT_DATASETS_PATH = "/var/data"


class DatasetError(Exception):
    """A dataset is missing or unusable; the message names the file and the problem."""


@dataclass
class Data:
    """The samples present in both files, in the molecules file's column order; the
    molecules sorted by identifier (not the file's row order)."""

    molecules: List[str]  # identifiers, sorted
    samples: List[str]
    X: np.ndarray  # samples x molecules, float64
    event: np.ndarray  # bool
    time: np.ndarray  # float64

    @property
    def y(self) -> np.ndarray:
        """The structured survival array scikit-survival expects."""
        y = np.empty(len(self.time), dtype=[("event", bool), ("time", np.float64)])
        y["event"] = self.event
        y["time"] = self.time
        return y


def datasets_root() -> str:
    return os.environ.get("DATASETS_PATH") or DEFAULT_DATASETS_PATH


def resolve(relative: str) -> str:
    """The absolute path of a dataset argument, which must name an existing file inside
    the datasets folder, symbolic links resolved."""
    root = os.path.realpath(datasets_root())
    path = os.path.realpath(os.path.join(root, relative))
    if os.path.commonpath([root, path]) != root:
        raise DatasetError(f"{relative}: not a path inside the datasets folder")
    if not os.path.isfile(path):
        raise DatasetError(f"{relative}: not found (looked for {path})")
    return path


def _read_table(path: str, label: str):
    import pandas as pd

    try:
        with open(path, "r", encoding="utf-8", newline="") as f:
            first = f.readline()
    except UnicodeDecodeError:
        raise DatasetError(f"{label}: cannot be read (not UTF-8 text)") from None
    except OSError as e:
        raise DatasetError(f"{label}: cannot be read ({e.strerror})") from None
    if not first.strip():
        raise DatasetError(f"{label}: is empty")
    sep = "\t" if "\t" in first else ","
    try:
        table = pd.read_csv(path, sep=sep, index_col=0, decimal=".")
    except pd.errors.ParserError as e:  # its messages give places, not content
        raise DatasetError(f"{label}: not a table pandas can read ({e})") from None
    except Exception as e:  # pandas raises several kinds for malformed files
        raise DatasetError(
            f"{label}: not a table pandas can read ({type(e).__name__})"
        ) from None
    table.index = table.index.map(lambda v: str(v).strip())
    table.columns = [str(c).strip() for c in table.columns]
    return table


def _numeric(table, label: str, what: str):
    import pandas as pd

    values = table.apply(pd.to_numeric, errors="coerce")
    bad = values.isna() & table.notna()
    if bad.to_numpy().any():
        row, col = next(zip(*np.nonzero(bad.to_numpy())))
        raise DatasetError(
            f"{label}: {what} must be numbers; line {_line(row)}, field {col + 2} is not"
        )
    missing = int(values.isna().to_numpy().sum())
    if missing:
        raise DatasetError(f"{label}: {missing} empty or NaN values")
    return values


def _line(row: int) -> int:
    """The file's line of a table row: the header is line 1."""
    return int(row) + 2


def _first(mask) -> int:
    """The position of the first True."""
    return int(np.flatnonzero(np.asarray(mask))[0])


def read(
    molecules_arg: str,
    clinical_arg: str,
    *,
    min_samples: int = 2,
    min_events: int = 1,
    positive_times: bool = False,
) -> Data:
    """Reads and checks both files; see the module documentation."""
    molecules = _read_table(resolve(molecules_arg), molecules_arg)
    clinical = _read_table(resolve(clinical_arg), clinical_arg)

    if molecules.shape[0] == 0 or molecules.shape[1] == 0:
        raise DatasetError(f"{molecules_arg}: has no molecules or no samples")
    if molecules.index.has_duplicates:
        line = _line(_first(molecules.index.duplicated()))
        raise DatasetError(f"{molecules_arg}: a molecule appears more than once (line {line})")
    if len(set(molecules.columns)) != len(molecules.columns):
        raise DatasetError(f"{molecules_arg}: a sample column appears more than once")
    # Sorted by identifier: the order Multiomix's np.intersect1d gives the selected
    # molecules when it uses the model, so masks, features and model.pkl share it.
    molecules = molecules.loc[sorted(molecules.index)]
    molecules = _numeric(molecules, molecules_arg, "expression values")
    if not np.isfinite(molecules.to_numpy()).all():
        raise DatasetError(f"{molecules_arg}: has infinite values")

    if clinical.shape[1] != 2:
        raise DatasetError(
            f"{clinical_arg}: needs exactly two columns, event then time; has "
            f"{clinical.shape[1]}"
        )
    if clinical.index.has_duplicates:
        line = _line(_first(clinical.index.duplicated()))
        raise DatasetError(f"{clinical_arg}: a sample appears more than once (line {line})")
    clinical = _numeric(clinical, clinical_arg, "event and time")
    event_col, time_col = clinical.columns
    events = clinical[event_col]
    if not events.isin([0, 1]).all():
        line = _line(_first(~events.isin([0, 1])))
        raise DatasetError(
            f"{clinical_arg}: the event (first column) must be 0 or 1; line {line} is not"
        )
    times = clinical[time_col]
    too_small = (times <= 0) if positive_times else (times < 0)
    if too_small.any():
        need = "greater than 0" if positive_times else "0 or more"
        raise DatasetError(
            f"{clinical_arg}: the time (second column) must be {need}; "
            f"line {_line(_first(too_small))} is not"
        )

    clinical_samples = set(clinical.index)
    samples = [s for s in molecules.columns if s in clinical_samples]
    if len(samples) < min_samples:
        raise DatasetError(
            f"{molecules_arg}: only {len(samples)} of its samples are in {clinical_arg}; "
            f"at least {min_samples} are needed"
        )
    clinical = clinical.loc[samples]
    n_events = int(clinical[event_col].sum())
    if n_events < min_events:
        raise DatasetError(
            f"{clinical_arg}: {n_events} events (event = 1) among the {len(samples)} "
            f"shared samples; at least {min_events} are needed"
        )
    return Data(
        molecules=list(molecules.index),
        samples=samples,
        X=np.ascontiguousarray(molecules[samples].to_numpy(dtype=np.float64).T),
        event=clinical[event_col].to_numpy().astype(bool),
        time=clinical[time_col].to_numpy(dtype=np.float64),
    )
