"""The job's command line: `--name value` pairs, as the service passes them on.

The service forwards every argument Multiomix sends, including ones this job has no use
for (`--n-stars 15`, `--cv-folds 10`); those are kept, not refused, so that a new
argument in Multiomix never breaks a running deployment.
"""

import argparse
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional

# The app name becomes a directory under RESULTS_PATH: one path segment, no tricks.
_APP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class UsageError(Exception):
    """The command line cannot be used; the message says why."""


@dataclass
class JobArguments:
    app_name: str
    molecules_dataset: str
    clinical_dataset: Optional[str] = None
    clinical_column: str = "time"
    top: Optional[int] = None
    extra: Dict[str, str] = field(default_factory=dict)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse would exit(2) on its own
        raise UsageError(message)


def _parser() -> _Parser:
    p = _Parser(prog="main.py", allow_abbrev=False, add_help=False)
    p.add_argument("--app-name", required=True)
    p.add_argument("--molecules-dataset", required=True)
    p.add_argument("--clinical-dataset")
    p.add_argument("--clinical-column", default="time")
    p.add_argument("--top", type=int)
    return p


def _pairs(rest: List[str]) -> Dict[str, str]:
    """Turns the arguments this job does not know into a name -> value map."""
    extra: Dict[str, str] = {}
    i = 0
    while i < len(rest):
        item = rest[i]
        if not item.startswith("--") or len(item) == 2:
            raise UsageError(f"expected an argument name starting with --, got {item!r}")
        name = item[2:]
        if "=" in name:
            name, value = name.split("=", 1)
            i += 1
        elif i + 1 < len(rest) and not rest[i + 1].startswith("--"):
            value = rest[i + 1]
            i += 2
        else:
            value = "true"  # a bare flag
            i += 1
        extra[name] = value
    return extra


def parse(argv: List[str]) -> JobArguments:
    ns, rest = _parser().parse_known_args(argv)
    if not _APP_NAME.match(ns.app_name):
        raise UsageError(
            f"--app-name {ns.app_name!r} must be 1-128 characters of letters, digits, "
            "'.', '_' or '-', starting with a letter or digit"
        )
    if ns.top is not None and ns.top < 1:
        raise UsageError("--top must be at least 1")
    return JobArguments(
        app_name=ns.app_name,
        molecules_dataset=ns.molecules_dataset,
        clinical_dataset=ns.clinical_dataset,
        clinical_column=ns.clinical_column,
        top=ns.top,
        extra=_pairs(rest),
    )
