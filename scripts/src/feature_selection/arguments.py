"""The job's command line: the `--name value` pairs the service builds from Multiomix's
`entrypoint_arguments`.

Every argument of Multiomix's BBHA request is accepted with its exact spelling and the
value forms Multiomix sends (`"true"`, integers as numbers or strings). An unknown name or
a value that cannot be used is a `UsageError` naming the argument; the job exits 2 on it
before Spark starts.

`bbha-version`, `coeff-1`, `coeff-2` and `binary-threshold` are this service's additions
(Multiomix's Spark request does not send them): optional, with the original BBHA's
defaults, and limited to the values Multiomix's own improved BBHA accepts.
"""

import re
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

MODELS = ("svm", "rf", "clustering")
SVM_KERNELS = ("linear", "poly", "rbf")
SVM_OPTIMIZERS = ("avltree", "rbtree")
CLUSTERING_ALGORITHMS = ("k_means", "spectral", "bk_means", "ward")
SCORING_METHODS = ("concordance_index", "log_likelihood")
BBHA_VERSIONS = (1, 2)  # 1 the original BBHA, 2 the improved one
COEFF_1 = (2.2, 2.35)  # the improved BBHA's coefficients, as Multiomix offers them
COEFF_2 = (0.1, 0.2, 0.3)
RANDOM_THRESHOLD = "random"

# The app name becomes a folder under RESULTS_PATH: one path segment, no tricks.
_APP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_INTEGER = re.compile(r"^[+-]?[0-9]+$")
_DECIMAL = re.compile(r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$")


class UsageError(Exception):
    """The command line cannot be used; the message names the argument."""


@dataclass(frozen=True)
class JobArguments:
    app_name: str
    molecules_dataset: str
    clinical_dataset: str
    model: str = "svm"
    n_stars: int = 15
    bbha_iterations: int = 10
    cv_folds: int = 10
    debug: bool = False
    svm_kernel: str = "linear"
    svm_optimizer: str = "avltree"
    svm_max_iterations: int = 1000
    svm_is_regression: bool = False
    rf_n_estimators: int = 10
    clustering_algorithm: str = "k_means"
    number_of_clusters: int = 2
    clustering_scoring_method: str = "log_likelihood"
    random_state: Optional[int] = None
    bbha_version: int = 1
    coeff_1: float = 2.35
    coeff_2: float = 0.2
    binary_threshold: Optional[float] = 0.6  # None: a new random threshold per molecule


def _integer(low: int, high: int) -> Callable[[str, str], int]:
    def convert(name: str, value: str) -> int:
        # Multiomix sends some integers as JSON numbers; a float-looking "15.0" is still 15.
        text = value.strip()
        if text.endswith(".0") and _INTEGER.match(text[:-2]):
            text = text[:-2]
        if not _INTEGER.match(text):
            raise UsageError(f"--{name} must be an integer, got {value!r}")
        number = int(text)
        if not low <= number <= high:
            raise UsageError(f"--{name} must be between {low} and {high}, got {number}")
        return number

    return convert


def _boolean(name: str, value: str) -> bool:
    text = value.strip().lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise UsageError(f"--{name} must be true or false, got {value!r}")


def _choice(choices) -> Callable[[str, str], str]:
    def convert(name: str, value: str) -> str:
        if value not in choices:
            raise UsageError(f"--{name} must be one of {', '.join(choices)}, got {value!r}")
        return value

    return convert


def _bbha_version(name: str, value: str) -> int:
    try:
        version = _integer(min(BBHA_VERSIONS), max(BBHA_VERSIONS))(name, value)
    except UsageError:
        version = None
    if version not in BBHA_VERSIONS:
        raise UsageError(
            f"--{name} must be 1 (the original BBHA) or 2 (the improved BBHA), got {value!r}"
        )
    return version


def _decimal(value: str) -> Optional[float]:
    text = value.strip()
    return float(text) if _DECIMAL.match(text) else None


def _one_of(choices) -> Callable[[str, str], float]:
    def convert(name: str, value: str) -> float:
        number = _decimal(value)
        for choice in choices:
            if number is not None and abs(number - choice) < 1e-9:
                return choice
        raise UsageError(
            f"--{name} must be one of {', '.join(str(c) for c in choices)}, got {value!r}"
        )

    return convert


def _threshold(name: str, value: str) -> Optional[float]:
    if value.strip() == RANDOM_THRESHOLD:
        return None
    number = _decimal(value)
    if number is None or not 0.0 < number < 1.0:
        raise UsageError(
            f"--{name} must be a number between 0 and 1 (exclusive) or {RANDOM_THRESHOLD!r}, "
            f"got {value!r}"
        )
    return number


def _app_name(name: str, value: str) -> str:
    if not _APP_NAME.match(value):
        raise UsageError(
            f"--{name} {value!r} must be 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return value


def _dataset(name: str, value: str) -> str:
    if not value.strip():
        raise UsageError(f"--{name} must not be empty")
    return value


_MAX_INT = 2**31 - 1

# name on the command line -> (field of JobArguments, converter)
_ARGUMENTS: Dict[str, tuple] = {
    "app-name": ("app_name", _app_name),
    "molecules-dataset": ("molecules_dataset", _dataset),
    "clinical-dataset": ("clinical_dataset", _dataset),
    "model": ("model", _choice(MODELS)),
    "n-stars": ("n_stars", _integer(2, 1000)),
    "bbha-iterations": ("bbha_iterations", _integer(1, 10000)),
    "cv-folds": ("cv_folds", _integer(2, 100)),
    "debug": ("debug", _boolean),
    "svm-kernel": ("svm_kernel", _choice(SVM_KERNELS)),
    "svm-optimizer": ("svm_optimizer", _choice(SVM_OPTIMIZERS)),
    "svm-max-iterations": ("svm_max_iterations", _integer(1, 1_000_000)),
    "svm-is-regression": ("svm_is_regression", _boolean),
    "rf-n-estimators": ("rf_n_estimators", _integer(1, 10_000)),
    "clustering-algorithm": ("clustering_algorithm", _choice(CLUSTERING_ALGORITHMS)),
    "number-of-clusters": ("number_of_clusters", _integer(2, 1000)),
    "clustering-scoring-method": ("clustering_scoring_method", _choice(SCORING_METHODS)),
    "random-state": ("random_state", _integer(0, _MAX_INT)),
    "bbha-version": ("bbha_version", _bbha_version),
    "coeff-1": ("coeff_1", _one_of(COEFF_1)),
    "coeff-2": ("coeff_2", _one_of(COEFF_2)),
    "binary-threshold": ("binary_threshold", _threshold),
}
_REQUIRED = ("app-name", "molecules-dataset", "clinical-dataset")


def known_names() -> List[str]:
    return list(_ARGUMENTS)


def parse(argv: List[str]) -> JobArguments:
    """Reads `--name value` (or `--name=value`) pairs; see the module documentation."""
    values: Dict[str, object] = {}
    i = 0
    while i < len(argv):
        item = argv[i]
        if not item.startswith("--") or len(item) == 2:
            raise UsageError(f"expected an argument name starting with --, got {item!r}")
        name = item[2:]
        if "=" in name:
            name, value = name.split("=", 1)
            i += 1
        elif i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            value = argv[i + 1]
            i += 2
        else:
            raise UsageError(f"--{name} has no value")
        if name not in _ARGUMENTS:
            raise UsageError(f"unknown argument --{name}")
        field, convert = _ARGUMENTS[name]
        if field in values:
            raise UsageError(f"--{name} is given twice")
        values[field] = convert(name, value)
    for name in _REQUIRED:
        if _ARGUMENTS[name][0] not in values:
            raise UsageError(f"--{name} is required")
    return JobArguments(**values)


def parameters_string(args: JobArguments) -> str:
    """The model's settings in the positional form Multiomix splits on `_`."""
    if args.model == "svm":
        task = "regression" if args.svm_is_regression else "ranking"
        return (
            f"{task}_{args.svm_max_iterations}_max_iterations_"
            f"{args.svm_optimizer}_optimizer_{args.svm_kernel}_kernel"
        )
    if args.model == "rf":
        return f"{args.rf_n_estimators}_trees"
    return (
        f"{args.number_of_clusters}_clusters_"
        f"{args.clustering_algorithm.replace('_', '-')}_algorithm_"
        f"{args.clustering_scoring_method.replace('_', '-')}_scoring_method"
    )
