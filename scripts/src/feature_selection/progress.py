"""Progress reports: how far the search has come, for the service to show while the job
runs.

One document per job, replaced whole at each report, outside the result folder (Multiomix
reads every `*.json` in `<app-name>/` as a times file):

- RESULTS_PATH a local folder: `<RESULTS_PATH>/.progress/<app-name>.json`, written to a
  temporary file in that folder and renamed over the old one, so a reader sees one
  report or the next, never half of one;
- RESULTS_PATH `s3://bucket/prefix/`: the object `prefix.progress/<app-name>.json`, put
  whole at each report (not with the results, which go up at the end).

The destination is taken from RESULTS_PATH as the job received it, before `remote`
points it at a local folder for an s3:// location.

The document (keys camelCase, times unix seconds): `version` (1), `appName`,
`algorithm` (`bbha` or `blind_search`), `startedAt` (the search's start), `updatedAt`,
`iteration` (BBHA: 0 once the initial stars are evaluated, then one per iteration; Blind
Search: chunks done), `iterations`, `bestFitness` (null when not finite), `molecules`,
`evaluationsDone`, `evaluationsTotal` and `history`, one point per report written, oldest
first: at most `HISTORY_POINTS`, the first and the last kept and the middle thinned
evenly. The whole document stays under `MAX_BYTES`.

When the environment has `PROGRESS_TOKEN` (the service draws one per job and passes it to
the driver), the document also carries it as `token`: the service accepts a report for a
job only with that job's token, so a job cannot report for another.

A report that cannot be written is a warning in the log, once until a write succeeds
again, and the job goes on: the next report replaces it.
"""

import json
import math
import os
import time
from typing import Callable, List, Optional, Tuple

VERSION = 1
FOLDER = ".progress"
HISTORY_POINTS = 200
MAX_BYTES = 64 * 1024
# Blind Search's chunks can be a fraction of a second each: at most one report this often
# (the last one is always written).
BLIND_SEARCH_INTERVAL = 2.0
BBHA = "bbha"
BLIND_SEARCH = "blind_search"
# A report is not worth holding the search up for: short timeouts, one retry.
_S3_TIMEOUTS = dict(connect_timeout=3, read_timeout=5, retries={"total_max_attempts": 2})


class LocalFile:
    """`<root>/.progress/<app-name>.json`, replaced by a rename."""

    def __init__(self, root: str, app_name: str):
        self.folder = os.path.join(root, FOLDER)
        self.path = os.path.join(self.folder, f"{app_name}.json")
        self.temporary = os.path.join(self.folder, f".{app_name}.json.{os.getpid()}.tmp")

    def write(self, body: bytes) -> None:
        os.makedirs(self.folder, exist_ok=True)
        try:
            fd = os.open(self.temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            with os.fdopen(fd, "wb") as f:
                f.write(body)
            os.replace(self.temporary, self.path)
        except BaseException:
            try:
                os.unlink(self.temporary)
            except OSError:
                pass
            raise

    def __str__(self) -> str:
        return self.path


class S3Object:
    """`s3://bucket/<prefix>.progress/<app-name>.json`, put whole at each report."""

    def __init__(self, bucket: str, prefix: str, app_name: str, client=None):
        self.bucket = bucket
        self.key = f"{prefix}{FOLDER}/{app_name}.json"
        self.client = client

    def write(self, body: bytes) -> None:
        if self.client is None:
            import boto3
            from botocore.config import Config

            self.client = boto3.client("s3", config=Config(**_S3_TIMEOUTS))
        self.client.put_object(Bucket=self.bucket, Key=self.key, Body=body,
                               ContentType="application/json")

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def destination(results_path: Optional[str], app_name: str):
    """Where the reports of `app_name` go for a RESULTS_PATH value (as the job received
    it): an S3Object for `s3://`, else a LocalFile under the folder (the results'
    default when unset)."""
    from .remote import s3_location
    from .results import DEFAULT_RESULTS_PATH

    location = s3_location(results_path)
    if location is not None:
        return S3Object(location[0], location[1], app_name)
    return LocalFile(os.path.abspath(results_path or DEFAULT_RESULTS_PATH), app_name)


def thin(points: List, size: int) -> List:
    """At most `size` (>= 2) of the points: the first, the last, and the middle evenly."""
    n = len(points)
    if n <= size:
        return list(points)
    # With n > size the step (n - 1) / (size - 1) exceeds 1: the indices are distinct.
    return [points[round(i * (n - 1) / (size - 1))] for i in range(size)]


def _finite(value) -> Optional[float]:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


class Reporter:
    """Builds and writes the reports of one run. Call it with (iteration, best fitness,
    molecules, evaluations done) after each step; `min_interval` seconds must pass
    between two reports written, except for the last (`iteration >= iterations`)."""

    def __init__(
        self,
        app_name: str,
        algorithm: str,
        iterations: int,
        evaluations_total: int,
        target,
        log: Callable[[str], None] = lambda message: None,
        min_interval: float = 0.0,
        clock: Callable[[], float] = time.time,
        max_bytes: int = MAX_BYTES,
        token: Optional[str] = None,
    ):
        self.app_name = app_name
        self.algorithm = algorithm
        self.iterations = iterations
        self.evaluations_total = evaluations_total
        self.target = target
        self.log = log
        self.min_interval = min_interval
        self.clock = clock
        self.max_bytes = max_bytes
        # The job's own token, from the service (see the module's docstring).
        self.token = token if token is not None else os.environ.get("PROGRESS_TOKEN") or None
        self.started_at = clock()
        # (iteration, best fitness, molecules, evaluations done, at), one per report written.
        self.history: List[Tuple] = []
        self.last_at: Optional[float] = None
        self.failing = False
        self.reports = 0  # reports made, and of them those that could not be written
        self.failed = 0

    def __call__(self, iteration: int, best_fitness, molecules: int, evaluations_done: int) -> bool:
        """Reports unless throttled; returns whether a report was made."""
        now = self.clock()
        last = iteration >= self.iterations
        if not last and self.last_at is not None and now - self.last_at < self.min_interval:
            return False
        self.last_at = now
        fitness = _finite(best_fitness)
        # Never below what was done: the service takes done <= total as given.
        self.evaluations_total = max(self.evaluations_total, evaluations_done)
        self.history.append((int(iteration), fitness, int(molecules), int(evaluations_done), now))
        shown = "none" if fitness is None else f"{fitness:.4f}"
        self.log(
            f"progress: iteration {iteration}/{self.iterations}, best fitness {shown} with "
            f"{molecules} molecules, {evaluations_done}/{self.evaluations_total} evaluations"
        )
        self.write(now)
        return True

    def document(self, now: float, points: List[Tuple]) -> dict:
        iteration, fitness, molecules, done, _ = self.history[-1]
        document = {
            "version": VERSION,
            "appName": self.app_name,
            "algorithm": self.algorithm,
            "startedAt": round(self.started_at, 3),
            "updatedAt": round(now, 3),
            "iteration": iteration,
            "iterations": self.iterations,
            "bestFitness": fitness,
            "molecules": molecules,
            "evaluationsDone": done,
            "evaluationsTotal": self.evaluations_total,
            "history": [
                {"iteration": i, "bestFitness": f, "molecules": m, "evaluationsDone": d,
                 "at": round(at, 3)}
                for i, f, m, d, at in points
            ],
        }
        if self.token is not None:
            document["token"] = self.token
        return document

    def encode(self, now: float) -> Optional[bytes]:
        """The document as UTF-8 JSON within `max_bytes`: the history is thinned further
        (halved, keeping its ends) while it does not fit; None when even two points do not."""
        points = thin(self.history, HISTORY_POINTS)
        while True:
            body = json.dumps(self.document(now, points), separators=(",", ":"),
                              allow_nan=False, ensure_ascii=False).encode("utf-8")
            if len(body) <= self.max_bytes:
                return body
            if len(points) <= 2:
                return None
            points = thin(points, max(2, len(points) // 2))

    def write(self, now: float) -> None:
        self.reports += 1
        try:
            body = self.encode(now)
            if body is None:
                raise ValueError(f"the report is over {self.max_bytes} bytes")
            self.target.write(body)
        except Exception as e:  # a lost report loses freshness only
            self.failed += 1
            if not self.failing:
                self.log(f"warning: progress report not written to {self.target} ({e}); "
                         "the job goes on, later reports are tried again")
            self.failing = True
            return
        if self.failing:
            self.log(f"progress reports written to {self.target} again")
        self.failing = False
