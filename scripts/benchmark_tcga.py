#!/usr/bin/env python3
"""Benchmark of the BBHA job at TCGA scale: how busy the cores are, and how the cutting
into tasks would fill 16, 64 and 256 cores.

Generates a TCGA-like dataset in Multiomix's format with a planted signal (default 20,000
molecules x 500 samples; `--smoke`: a small one, for CI), runs a short BBHA through
spark-submit with Spark's event log on, reads every task's duration from the event log,
and prints the data size and the machine, the wall time, the busy fraction (task seconds /
(wall x cores)) and, from the recorded durations of the work units (one (star, fold) for
svm and rf, one star for clustering), the simulated makespan and efficiency on 16, 64 and
256 cores of two cuttings of each batch (a BBHA iteration):
- old: the evaluations cut into contiguous slices, at most one slice per core, a slice's
  evaluations one after another (the cutting before one task per unit);
- new: one task per unit, each taken by the first free core in order (greedy list
  scheduling, a fair model of Spark's scheduler).
A batch ends when its last task does (the algorithm needs every fitness to go on).
Figures only, no thresholds.

When the event log's tasks are not the units (a job that groups them), the unit durations
come from the job's times file instead: each evaluation's time split evenly over its folds.

Usage:
  python scripts/benchmark_tcga.py [--smoke] [--molecules N] [--samples N] [--model svm]
      [--stars 15] [--iterations 2] [--folds 10] [--master local[2] | --standalone WORKERS]
      [--keep DIR]
spark-submit: $SPARK_SUBMIT or .venv/bin/spark-submit; Python: this interpreter.
"""

import argparse
import glob
import heapq
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

SCRIPTS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(SCRIPTS)
APP = "BBHA_tcga"
CORE_COUNTS = (16, 64, 256)


# ---- the event log --------------------------------------------------------------------


@dataclass
class Task:
    stage: int
    index: int  # the partition: star index // folds, fold index % folds
    executor: str
    seconds: float  # launch to finish: the time a core was held


@dataclass
class Stage:
    id: int
    tasks: int
    submitted: float  # epoch seconds
    completed: float


@dataclass
class EventLog:
    started: float = 0.0
    ended: float = 0.0
    stages: Dict[int, Stage] = field(default_factory=dict)
    tasks: List[Task] = field(default_factory=list)
    executor_cores: Dict[str, int] = field(default_factory=dict)

    def stage_tasks(self, stage: int) -> List[Task]:
        """The stage's successful tasks in partition order (one per partition)."""
        by_index = {t.index: t for t in self.tasks if t.stage == stage}
        return [by_index[i] for i in sorted(by_index)]


def read_event_log(path: str) -> EventLog:
    """Reads an uncompressed event log (`spark.eventLog.compress=false`): a file, or the
    folder of a rolling one."""
    files = sorted(glob.glob(os.path.join(path, "events_*"))) if os.path.isdir(path) else [path]
    log = EventLog()
    for name in files:
        with open(name) as f:
            for line in f:
                e = json.loads(line)
                kind = e["Event"]
                if kind == "SparkListenerApplicationStart":
                    log.started = e["Timestamp"] / 1000
                elif kind == "SparkListenerApplicationEnd":
                    log.ended = e["Timestamp"] / 1000
                elif kind == "SparkListenerExecutorAdded":
                    log.executor_cores[e["Executor ID"]] = e["Executor Info"]["Total Cores"]
                elif kind == "SparkListenerStageCompleted":
                    info = e["Stage Info"]
                    log.stages[info["Stage ID"]] = Stage(
                        info["Stage ID"], info["Number of Tasks"],
                        info["Submission Time"] / 1000, info["Completion Time"] / 1000,
                    )
                elif kind == "SparkListenerTaskEnd":
                    info = e["Task Info"]
                    if e.get("Task End Reason", {}).get("Reason") != "Success":
                        continue
                    log.tasks.append(Task(
                        e["Stage ID"], info["Index"], info["Executor ID"],
                        (info["Finish Time"] - info["Launch Time"]) / 1000,
                    ))
    return log


def find_event_log(folder: str) -> str:
    entries = [p for p in glob.glob(os.path.join(folder, "*")) if not p.endswith(".inprogress")]
    if len(entries) != 1:
        raise SystemExit(f"expected one event log in {folder}, found {entries}")
    return entries[0]


# ---- the simulated cuttings -------------------------------------------------------------


def contiguous_slices(n: int, slices: int) -> List[range]:
    """Spark's cutting of a list into `slices` contiguous parts (ParallelCollectionRDD)."""
    return [range(i * n // slices, (i + 1) * n // slices) for i in range(slices)]


def old_makespan(units: Sequence[float], folds: int, cores: int) -> float:
    """One batch, the old cutting: evaluations (each `folds` consecutive units, run one
    after another) in contiguous slices, at most one per core."""
    evaluations = [sum(units[i:i + folds]) for i in range(0, len(units), folds)]
    slices = contiguous_slices(len(evaluations), min(len(evaluations), cores))
    return max(sum(evaluations[i] for i in s) for s in slices)


def greedy_makespan(units: Sequence[float], cores: int) -> float:
    """One batch, the new cutting: each unit, in order, to the core free first."""
    free = [0.0] * min(cores, len(units))
    heapq.heapify(free)
    for u in units:
        heapq.heappush(free, heapq.heappop(free) + u)
    return max(free)


@dataclass
class Simulated:
    cores: int
    old_makespan: float
    new_makespan: float
    work: float

    def efficiency(self, makespan: float) -> float:
        return self.work / (makespan * self.cores) if makespan > 0 else 0.0


def simulate(batches: Sequence[Sequence[float]], folds: int, cores: int) -> Simulated:
    """Both cuttings over the batches, one after another."""
    return Simulated(
        cores,
        sum(old_makespan(b, folds, cores) for b in batches),
        sum(greedy_makespan(b, cores) for b in batches),
        sum(sum(b) for b in batches),
    )


def batch_sizes(n_stars: int, iterations: int, units_per_star: int) -> List[int]:
    """Units of each batch: the stars and the all-molecules mask, then the moved stars
    (all but the black hole) of each iteration."""
    return [(n_stars + 1) * units_per_star] + [(n_stars - 1) * units_per_star] * iterations


def unit_batches_from_log(log: EventLog, sizes: Sequence[int]) -> Optional[List[List[float]]]:
    """The batches' unit durations when the log has one task per unit: the stages whose
    task counts are the batches', in order. None when they are not there."""
    stages = sorted(log.stages.values(), key=lambda s: s.submitted)
    found, want = [], list(sizes)
    for s in stages:
        if want and s.tasks == want[0]:
            found.append([t.seconds for t in log.stage_tasks(s.id)])
            want.pop(0)
    return found if not want else None


def unit_batches_from_times(times: dict, units_per_star: int) -> List[List[float]]:
    """From the times file: each evaluation's time split evenly over its units."""
    batches: Dict[int, List[float]] = {}
    for it, seconds in zip(times["number_of_iterations"], times["execution_times"]):
        batches.setdefault(it, []).extend([seconds / units_per_star] * units_per_star)
    return [batches[k] for k in sorted(batches)]


def busy_fraction(task_seconds: float, wall: float, cores: int) -> float:
    return task_seconds / (wall * cores) if wall > 0 and cores > 0 else 0.0


# ---- a standalone cluster on this machine -----------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StandaloneCluster:
    """A Master and `workers` Workers of one core each on 127.0.0.1, from the pyspark
    distribution's jars; stopped (process groups killed) on exit."""

    def __init__(self, workers: int, work: str, worker_memory: str = "6g"):
        import pyspark

        self.home = os.path.dirname(pyspark.__file__)
        self.work, self.workers, self.worker_memory = work, workers, worker_memory
        self.procs: List[subprocess.Popen] = []

    def _start(self, cls: str, args: List[str], log: str) -> None:
        env = dict(os.environ, SPARK_HOME=self.home, SPARK_LOCAL_IP="127.0.0.1")
        out = open(os.path.join(self.work, log), "w")
        self.procs.append(subprocess.Popen(
            [os.path.join(self.home, "bin", "spark-class"), cls, *args],
            env=env, stdout=out, stderr=out, stdin=subprocess.DEVNULL, start_new_session=True,
        ))

    def __enter__(self):
        self.port, self.ui = free_port(), free_port()
        self._start("org.apache.spark.deploy.master.Master",
                    ["--host", "127.0.0.1", "--port", str(self.port), "--webui-port", str(self.ui)],
                    "master.log")
        for i in range(self.workers):
            folder = os.path.join(self.work, f"worker-{i}")
            os.makedirs(folder, exist_ok=True)
            self._start("org.apache.spark.deploy.worker.Worker",
                        ["--host", "127.0.0.1", "--cores", "1", "--memory", self.worker_memory,
                         "--webui-port", str(free_port()), "--work-dir", folder,
                         f"spark://127.0.0.1:{self.port}"], f"worker-{i}.log")
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.ui}/json/", timeout=5) as r:
                    state = json.load(r)
                if state["status"] == "ALIVE" and state["aliveworkers"] == self.workers:
                    return self
            except OSError:
                pass
            time.sleep(0.5)
        self.__exit__()
        raise SystemExit(f"the standalone cluster did not come up; logs in {self.work}")

    @property
    def master(self) -> str:
        return f"spark://127.0.0.1:{self.port}"

    def __exit__(self, *exc):
        for p in self.procs:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()


# ---- the run ----------------------------------------------------------------------------


def machine() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
        with open("/proc/meminfo") as f:
            mem = int(next(line.split()[1] for line in f if line.startswith("MemTotal"))) / 2**20
        return f"{os.cpu_count()} CPUs ({model}), {mem:.0f} GiB"
    except (OSError, StopIteration):
        return f"{os.cpu_count()} CPUs ({model})"


def run(opts) -> int:
    sys.path.insert(0, os.path.join(REPO, "examples", "datasets"))
    import generate

    spark_submit = os.environ.get("SPARK_SUBMIT") or os.path.join(REPO, ".venv", "bin", "spark-submit")
    work = opts.keep or tempfile.mkdtemp(prefix="bbha-tcga-")
    os.makedirs(work, exist_ok=True)
    datasets, results, events = (os.path.join(work, d) for d in ("datasets", "results", "events"))
    shutil.rmtree(events, ignore_errors=True)
    os.makedirs(events)
    started = time.perf_counter()
    signal_ids = generate.write(os.path.join(datasets, APP), opts.molecules, opts.samples,
                                n_signal=opts.signal, seed=2017)
    generated = time.perf_counter() - started
    units_per_star = 1 if opts.model == "clustering" else opts.folds
    job_args = ["--app-name", APP, "--molecules-dataset", f"{APP}/molecules.csv",
                "--clinical-dataset", f"{APP}/clinical.csv", "--model", opts.model,
                "--n-stars", str(opts.stars), "--bbha-iterations", str(opts.iterations),
                "--cv-folds", str(opts.folds), "--random-state", "1"]
    if opts.model == "rf":
        job_args += ["--rf-n-estimators", str(opts.trees)]
    env = dict(os.environ, DATASETS_PATH=datasets, RESULTS_PATH=results, JOB_NAME=APP)
    env.setdefault("PYSPARK_PYTHON", sys.executable)
    confs = {
        "spark.eventLog.enabled": "true",
        "spark.eventLog.dir": "file://" + events,
        "spark.eventLog.compress": "false",
        "spark.eventLog.rolling.enabled": "false",
        "spark.featureSelection.unitsPerTask": "1",
        "spark.driver.memory": opts.driver_memory,
        "spark.ui.enabled": "false",
    }
    cluster = None
    if opts.standalone:
        cluster = StandaloneCluster(opts.standalone, work).__enter__()
        master = cluster.master
        env["SPARK_LOCAL_IP"] = "127.0.0.1"
        confs.update({
            "spark.executor.memory": opts.executor_memory,
            "spark.executor.cores": "1",
            "spark.scheduler.minRegisteredResourcesRatio": "1.0",
            "spark.scheduler.maxRegisteredResourcesWaitingTime": "120s",
        })
    else:
        master = opts.master
    command = [spark_submit, "--master", master]
    for k, v in confs.items():
        command += ["--conf", f"{k}={v}"]
    command += ["--py-files", os.path.join(SCRIPTS, "scripts.zip"), os.path.join(SCRIPTS, "main.py"), *job_args]
    load_before = os.getloadavg()[0]
    try:
        started = time.perf_counter()
        proc = subprocess.run(command, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - started
    finally:
        if cluster:
            cluster.__exit__()
    load_after = os.getloadavg()[0]
    if proc.returncode != 0:
        print(proc.stdout[-3000:], proc.stderr[-5000:], sep="\n")
        print(f"spark-submit exited {proc.returncode}", file=sys.stderr)
        return 1
    with open(os.path.join(results, APP, "result.json")) as f:
        result = json.load(f)
    with open(os.path.join(results, APP, "times.json")) as f:
        times = json.load(f)

    log = read_event_log(find_event_log(events))
    cores = sum(log.executor_cores.values()) if opts.standalone else local_cores(master)
    task_seconds = sum(t.seconds for t in log.tasks)
    sizes = batch_sizes(opts.stars, opts.iterations, units_per_star)
    batches = unit_batches_from_log(log, sizes)
    source = "the event log (one task per unit)"
    if batches is None:
        batches = unit_batches_from_times(times, units_per_star)
        source = "the times file (tasks were not units: each evaluation split evenly over its folds)"
    batch_stages = sorted(log.stages.values(), key=lambda s: s.submitted)
    search_wall = batch_stages[-1].completed - batch_stages[0].submitted if batch_stages else 0.0
    units = [u for b in batches for u in b]
    found = [m for m in signal_ids if m in result["features"].split(" | ")]

    print(f"BBHA at TCGA scale: {opts.molecules} molecules x {opts.samples} samples "
          f"({os.path.getsize(os.path.join(datasets, APP, 'molecules.csv')) / 2**20:.0f} MiB CSV, "
          f"generated in {generated:.0f} s), model {opts.model}, {opts.stars} stars, "
          f"{opts.iterations} iterations, {opts.folds} folds, master {master} ({cores} cores)")
    print(f"  machine: {machine()}; load average before / after: {load_before:.1f} / {load_after:.1f}")
    print(f"  spark-submit wall time: {wall:.1f} s; the search's stages: {search_wall:.1f} s")
    print(f"  tasks: {len(log.tasks)}, {task_seconds:.1f} task seconds; busy fraction "
          f"{busy_fraction(task_seconds, wall, cores):.0%} of the wall time, "
          f"{busy_fraction(task_seconds, search_wall, cores):.0%} of the search's")
    print(f"  units: {len(units)} in {len(batches)} batches, from {source}; unit seconds "
          f"min {min(units):.2f}, median {sorted(units)[len(units) // 2]:.2f}, max {max(units):.2f}")
    print(f"  result: fitness {result['best_metric']:.4f}, {result['number_of_features']} molecules, "
          f"{len(found)} of the {len(signal_ids)} planted ones")
    print("  simulated | old cutting: makespan, efficiency | new: makespan, efficiency")
    for n in CORE_COUNTS:
        s = simulate(batches, units_per_star, n)
        print(f"  {n:>4} cores | {s.old_makespan:10.1f} s {s.efficiency(s.old_makespan):6.0%} "
              f"| {s.new_makespan:10.1f} s {s.efficiency(s.new_makespan):6.0%}")
    if not opts.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def local_cores(master: str) -> int:
    inside = master[len("local["):-1] if master.startswith("local[") else ""
    inside = inside.split(",")[0]
    return int(inside) if inside.isdigit() else os.cpu_count() or 1


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help="a small dataset and run, for CI")
    p.add_argument("--molecules", type=int)
    p.add_argument("--samples", type=int)
    p.add_argument("--signal", type=int, default=10)
    p.add_argument("--model", choices=["svm", "rf", "clustering"], default="svm")
    p.add_argument("--stars", type=int)
    p.add_argument("--iterations", type=int)
    p.add_argument("--folds", type=int, default=10)
    p.add_argument("--trees", type=int, default=10)
    p.add_argument("--master", default="local[2]")
    p.add_argument("--standalone", type=int, metavar="WORKERS",
                   help="run on a standalone cluster of this many one-core workers started here")
    p.add_argument("--driver-memory", default="4g")
    p.add_argument("--executor-memory", default="2g")
    p.add_argument("--keep", help="keep the datasets, results and event log in this folder")
    opts = p.parse_args(argv)
    small = dict(molecules=300, samples=80, stars=4, iterations=1)
    big = dict(molecules=20000, samples=500, stars=15, iterations=2)
    for k, v in (small if opts.smoke else big).items():
        if getattr(opts, k) is None:
            setattr(opts, k, v)
    if opts.smoke and opts.folds == 10:
        opts.folds = 3
    return run(opts)


if __name__ == "__main__":
    sys.exit(main())
