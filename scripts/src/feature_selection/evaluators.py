"""Running a batch of fitness evaluations: one after another in this process, or as
Spark tasks.

The algorithms hand a whole batch (a BBHA iteration's stars, a chunk of Blind Search's
subsets) to `evaluate` and get the evaluations back in the same order, so their results
do not depend on where the evaluations ran.

On Spark an evaluation is cut into units (`models.fold_plan`): one per (subset, fold) for
svm and rf, one per subset for clustering. A batch is one RDD of its units, star-major and
fold-minor, with one partition per unit, so Spark hands the next unit to whichever core is
idle and a cluster with more cores than subsets still fills up; the driver assembles each
subset's Evaluation with `models.combine`, exactly as `models.evaluate` does. Units of a few
milliseconds would spend more on Spark's per-task cost than on science, so the first batch
runs at most a few tasks per core, and once a batch shows units shorter than
`SHORT_UNIT_SECONDS` (median), the next batch groups consecutive units into tasks of about
`TASK_TARGET_SECONDS` (at most one core's share each); otherwise one unit per task. The Spark conf
`spark.featureSelection.unitsPerTask` (an integer; default `auto`) fixes the grouping.

The data reaches each executor once: X (float64, unchanged values, column-major so a
subset's columns are contiguous) is written as a .npy file shipped with `addFile`, and
every Python worker maps it read-only (`np.load(mmap_mode="r")`), so the workers of an
executor share the page cache instead of each holding a copy; the small vectors (event,
time, the folds) are broadcast. A unit copies only its subset of columns.
"""

import atexit
import math
import os
import shutil
import tempfile
import time
import uuid
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .datasets import Data
from .models import (Evaluation, ModelSpec, UnitResult, combine, evaluate, evaluate_fold, fold_plan,
                     one_thread)

UNITS_PER_TASK_CONF = "spark.featureSelection.unitsPerTask"
# Units shorter than this on average are grouped; longer ones run one per task.
SHORT_UNIT_SECONDS = 0.5
# A group of short units aims at about this much work per task.
TASK_TARGET_SECONDS = 2.0
# Before units are measured: enough tasks per core to balance units of unequal cost (a
# core's idle tail is at most about a quarter of its work), few enough that millisecond
# units do not pay a task's fixed cost each.
FIRST_BATCH_TASKS_PER_CORE = 4


class SequentialEvaluator:
    """Every evaluation in this process, one after another (tests, the benchmark)."""

    def __init__(self, spec: ModelSpec, data: Data):
        self.spec, self.data = spec, data
        self.plan = fold_plan(spec, data.event)
        self.batches = 0
        self.seconds = 0.0  # wall time spent in evaluate()

    def evaluate(self, masks: Sequence[np.ndarray]) -> List[Evaluation]:
        started = time.perf_counter()
        d = self.data
        out = [evaluate(self.spec, d.X, d.event, d.time, m, self.plan) for m in masks]
        self.batches += 1
        self.seconds += time.perf_counter() - started
        return out


def units_per_task(setting: str, n_units: int, parallelism: int, typical_unit_seconds: Optional[float]) -> int:
    """How many consecutive units one task runs. `setting` is the conf's value: an integer
    fixes it. `auto`: before any unit is measured (the first batch), at most
    FIRST_BATCH_TASKS_PER_CORE tasks per core, which is one unit per task as soon as there
    are that many cores per unit; then one unit per task unless the previous batch's
    typical (median) unit took under SHORT_UNIT_SECONDS, when about TASK_TARGET_SECONDS of
    units go together, never more than one core's share."""
    if setting != "auto":
        return max(1, int(setting))
    cores = max(1, parallelism)
    if typical_unit_seconds is None:
        return max(1, math.ceil(n_units / (FIRST_BATCH_TASKS_PER_CORE * cores)))
    if typical_unit_seconds >= SHORT_UNIT_SECONDS:
        return 1
    fair_share = math.ceil(n_units / cores)
    by_time = math.floor(TASK_TARGET_SECONDS / max(typical_unit_seconds, 1e-6))
    return max(1, min(fair_share, by_time))


# The executor side. A Python worker keeps the mapped data between tasks (Spark reuses
# workers), keyed by the job's file name.
_MAPPED: Dict[str, np.ndarray] = {}


def _matrix(name: str) -> np.ndarray:
    X = _MAPPED.get(name)
    if X is None:
        from pyspark import SparkFiles

        _MAPPED.clear()
        X = _MAPPED[name] = np.load(SparkFiles.get(name), mmap_mode="r")
    return X


def _run_units(shared, units) -> List[Tuple[int, UnitResult]]:
    """Runs a task's units: each is (unit index, star's molecule count, packbits(mask),
    fold index)."""
    spec, name, event, time_, plan = shared.value
    X = _matrix(name)
    out = []
    with one_thread():
        for index, n, bits, fold in units:
            mask = np.unpackbits(np.frombuffer(bits, dtype=np.uint8), count=n).astype(bool)
            out.append((index, evaluate_fold(spec, X, event, time_, np.flatnonzero(mask), plan[fold])))
    return out


class SparkEvaluator:
    """Each batch as one Spark job of (subset, fold) units; see the module documentation."""

    def __init__(self, spark_context, spec: ModelSpec, data: Data):
        self.sc = spark_context
        self.spec = spec
        self.n = data.X.shape[1]
        self.plan = fold_plan(spec, data.event)
        self.setting = spark_context.getConf().get(UNITS_PER_TASK_CONF, "auto").strip().lower()
        if self.setting != "auto" and not (self.setting.isdigit() and int(self.setting) > 0):
            raise ValueError(f"{UNITS_PER_TASK_CONF} must be a positive integer or auto, got {self.setting!r}")
        self.folder = tempfile.mkdtemp(prefix="feature-selection-data-")
        # Removed when the driver exits, not in close(): while the SparkContext lives, an
        # executor starting any later task fetches every file ever added to it, and a
        # missing source fails that task.
        atexit.register(shutil.rmtree, self.folder, True)
        self.name = f"X-{uuid.uuid4().hex}.npy"
        path = os.path.join(self.folder, self.name)
        np.save(path, np.asfortranarray(data.X, dtype=np.float64))
        spark_context.addFile(path)
        self.shared = spark_context.broadcast((spec, self.name, data.event, data.time, self.plan))
        self.typical_unit_seconds: Optional[float] = None  # median unit of the last batch
        self.last_units_per_task = 0
        self.batches = 0
        self.seconds = 0.0

    def evaluate(self, masks: Sequence[np.ndarray]) -> List[Evaluation]:
        if not masks:
            return []
        started = time.perf_counter()
        folds = len(self.plan)
        units = []
        for star, mask in enumerate(masks):
            bits = np.packbits(np.asarray(mask, dtype=bool)).tobytes()
            for fold in range(folds):
                units.append((star * folds + fold, self.n, bits, fold))
        per_task = units_per_task(self.setting, len(units), self.sc.defaultParallelism,
                                  self.typical_unit_seconds)
        shared = self.shared
        rdd = self.sc.parallelize(units, numSlices=math.ceil(len(units) / per_task))
        results = dict(rdd.mapPartitions(lambda part: _run_units(shared, list(part))).collect())
        out = []
        for star, mask in enumerate(masks):
            mine = [results[star * folds + fold] for fold in range(folds)]
            out.append(combine(self.spec, int(np.count_nonzero(mask)), mine))
        # The median, not the mean: a worker's first unit also imports the libraries.
        self.typical_unit_seconds = float(np.median([r.seconds for r in results.values()]))
        self.last_units_per_task = per_task
        self.last_tasks = rdd.getNumPartitions()
        self.batches += 1
        self.seconds += time.perf_counter() - started
        return out

    def close(self) -> None:
        self.shared.destroy()
