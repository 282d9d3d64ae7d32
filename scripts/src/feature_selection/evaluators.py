"""Running a batch of fitness evaluations: one after another in this process, or as
Spark tasks.

The algorithms hand a whole batch (a BBHA iteration's stars, a chunk of Blind Search's
subsets) to `evaluate` and get the evaluations back in the same order, so their results
do not depend on where the evaluations ran.

With Spark the data is broadcast once per job; each batch is one RDD split into as many
tasks as the cluster has cores, so a cluster's executors share an iteration and `local[N]`
keeps N cores busy. Python workers are reused between tasks, so the libraries are
imported and the broadcast is read once per worker, not per evaluation.
"""

import time
from typing import List, Sequence

import numpy as np

from .datasets import Data
from .models import Evaluation, ModelSpec, evaluate


class SequentialEvaluator:
    """Every evaluation in this process, one after another (tests, the benchmark)."""

    def __init__(self, spec: ModelSpec, data: Data):
        self.spec, self.data = spec, data
        self.batches = 0
        self.seconds = 0.0  # wall time spent in evaluate()

    def evaluate(self, masks: Sequence[np.ndarray]) -> List[Evaluation]:
        started = time.perf_counter()
        out = [evaluate(self.spec, self.data.X, self.data.event, self.data.time, m) for m in masks]
        self.batches += 1
        self.seconds += time.perf_counter() - started
        return out


def _task(broadcast, packed):
    """One evaluation on an executor: `packed` is (number of molecules, packbits(mask))."""
    spec, X, event, time_ = broadcast.value
    n, bits = packed
    mask = np.unpackbits(np.frombuffer(bits, dtype=np.uint8), count=n).astype(bool)
    return evaluate(spec, X, event, time_, mask)


class SparkEvaluator:
    """Each evaluation of a batch as one Spark task."""

    def __init__(self, spark_context, spec: ModelSpec, data: Data):
        self.sc = spark_context
        self.n = data.X.shape[1]
        self.broadcast = spark_context.broadcast((spec, data.X, data.event, data.time))
        self.batches = 0
        self.seconds = 0.0

    def evaluate(self, masks: Sequence[np.ndarray]) -> List[Evaluation]:
        if not masks:
            return []
        started = time.perf_counter()
        n, broadcast = self.n, self.broadcast
        packed = [(n, np.packbits(np.asarray(m, dtype=bool)).tobytes()) for m in masks]
        # As many tasks as the cluster has cores (at most one per evaluation): a task's
        # fixed cost (scheduling, a round trip to a Python worker) is paid once per core
        # rather than once per evaluation (scripts/benchmark.py shows the difference).
        slices = min(len(packed), max(1, self.sc.defaultParallelism))
        rdd = self.sc.parallelize(packed, numSlices=slices)
        out = rdd.map(lambda p: _task(broadcast, p)).collect()
        self.batches += 1
        self.seconds += time.perf_counter() - started
        return out

    def close(self) -> None:
        self.broadcast.destroy()
