#!/usr/bin/env python3
"""Memory of the job's Python workers at TCGA size: figures only, no thresholds.

Generates a dataset of 20,000 molecules x 1,100 samples (planted signal, generate.py) in
memory, starts Spark on `local[2]` with the job's package (scripts.zip built from src), and
evaluates one subset on two folds: two (subset, fold) units, one per worker, with the
job's SparkEvaluator. While it runs, it samples every Python worker's memory from /proc
(PSS shares a page used by n processes n ways; RSS counts it whole in each), and prints
per worker the peak RSS (VmHWM, kept by the kernel), the peak PSS and the peak virtual
size (VmPeak), their sums, and the sizes the sizing rule uses.

Usage: .venv/bin/python scripts/worker_memory.py [--model rf|svm] [--molecules 20000]
       [--samples 1100] [--subset 10000]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time

SCRIPTS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(SCRIPTS)
sys.path.insert(0, os.path.join(SCRIPTS, "src"))
sys.path.insert(0, os.path.join(REPO, "examples", "datasets"))

import numpy as np  # noqa: E402

import generate  # noqa: E402
from feature_selection.datasets import Data  # noqa: E402
from feature_selection.evaluators import SparkEvaluator  # noqa: E402
from feature_selection.models import ModelSpec  # noqa: E402

MiB = 1024 * 1024


def _parent(pid):
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def _descends_from_us(pid):
    me = os.getpid()
    while pid > 1:
        pid = _parent(pid)
        if pid == me:
            return True
    return False


def workers():
    """The pids of this Spark's PySpark daemon and workers (descendants of this process:
    other Spark applications on the machine are left out)."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read()
            if (b"pyspark.daemon" in cmd or b"pyspark.worker" in cmd) and _descends_from_us(int(pid)):
                out.append(int(pid))
        except OSError:
            continue
    return out


def status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def pss_kib(pid):
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="rf", choices=["rf", "svm"])
    p.add_argument("--molecules", type=int, default=20000)
    p.add_argument("--samples", type=int, default=1100)
    p.add_argument("--subset", type=int, default=10000, help="molecules in the evaluated subset")
    opts = p.parse_args()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

    ids, samples, values, event, time_, _ = generate.generate(opts.molecules, opts.samples, 5, seed=23)
    data = Data(ids, samples, np.ascontiguousarray(values.T), event.astype(bool), time_.astype(float))
    del values
    spec = ModelSpec(model=opts.model, cv_folds=2, rf_n_estimators=10, svm_max_iterations=100,
                     random_state=1)
    mask = np.zeros(opts.molecules, dtype=bool)
    mask[np.random.default_rng(1).choice(opts.molecules, opts.subset, replace=False)] = True

    from pyspark import SparkConf, SparkContext

    conf = (SparkConf().setMaster("local[2]").setAppName("worker-memory")
            .set("spark.ui.enabled", "false").set("spark.ui.showConsoleProgress", "false")
            .set("spark.driver.host", "127.0.0.1").set("spark.driver.bindAddress", "127.0.0.1")
            .set("spark.driver.memory", "2g"))
    sc = SparkContext(conf=conf)
    sc.setLogLevel("ERROR")
    with tempfile.TemporaryDirectory() as tmp:
        archive = os.path.join(tmp, "scripts.zip")
        subprocess.run([os.path.join(SCRIPTS, "build-py-files.sh"), archive], check=True,
                       capture_output=True)
        sc.addPyFile(archive)
        peaks = {}
        done = threading.Event()

        def sample():
            while not done.is_set():
                for pid in workers():
                    try:
                        peaks[pid] = max(peaks.get(pid, 0), pss_kib(pid))
                    except OSError:
                        pass
                time.sleep(0.1)

        sampler = threading.Thread(target=sample, daemon=True)
        evaluator = SparkEvaluator(sc, spec, data)
        sampler.start()
        started = time.perf_counter()
        (result,) = evaluator.evaluate([mask])
        wall = time.perf_counter() - started
        done.set()
        sampler.join()
        rows = []
        for pid in workers():
            try:
                rows.append((pid, status_kib(pid, "VmHWM"), status_kib(pid, "VmRSS"), peaks.get(pid, 0),
                             status_kib(pid, "VmPeak")))
            except OSError:
                pass
        evaluator.close()
    sc.stop()

    n, m, k = opts.samples, opts.molecules, opts.subset
    print(f"Python workers on local[2]: {m} molecules x {n} samples, one {opts.model} subset of {k} "
          f"molecules on 2 folds (2 units, {getattr(evaluator, 'last_tasks', '?')} tasks), {wall:.1f} s, fitness {result.fitness:.4f}")
    print(f"  X as float64: {8 * n * m / MiB:.0f} MiB; one subset copy: {8 * n * k / MiB:.0f} MiB")
    # Virtual size matters where a limit is on address space (spark.executor.pyspark.memory
    # sets RLIMIT_AS in each worker): it counts the whole mapped file and every library.
    print("  pid      peak RSS   RSS now   peak PSS  peak virtual  (MiB)")
    for pid, hwm, rss, pss, peak in sorted(rows):
        print(f"  {pid:<8} {hwm / 1024:8.0f}  {rss / 1024:8.0f}  {pss / 1024:8.0f}  {peak / 1024:12.0f}")
    print(f"  sum      {sum(r[1] for r in rows) / 1024:8.0f}  {sum(r[2] for r in rows) / 1024:8.0f}  "
          f"{sum(r[3] for r in rows) / 1024:8.0f}")
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())
