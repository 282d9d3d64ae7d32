#!/usr/bin/env python3
"""Benchmark of the BBHA job: the reference run, on Spark and without it.

Generates the reference dataset (200 molecules x 150 samples, Multiomix's format, planted
signal), runs main.py through spark-submit on `local[2]` (15 stars, 5 iterations, 3 folds,
svm linear) and prints the wall time, the evaluations per second Spark achieved, and the
same evaluations run one after another in this plain Python process (the limit without
Spark). Both runs use the same random-state, so they evaluate the same subsets; the
benchmark checks they select the same molecules. It also prints how the search went: the
stars swallowed per iteration, the molecules selected and how many of the 5 planted ones
are among them. Prints figures only: no thresholds.

Usage: .venv/bin/python scripts/benchmark.py [--master local[2]] [--keep DIR]
(spark-submit: $SPARK_SUBMIT or .venv/bin/spark-submit.)
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

SCRIPTS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(SCRIPTS)
sys.path.insert(0, os.path.join(SCRIPTS, "src"))
sys.path.insert(0, os.path.join(REPO, "examples", "datasets"))

import generate  # noqa: E402

APP = "BBHA_bench"
JOB_ARGS = ["--model", "svm", "--n-stars", "15", "--bbha-iterations", "5", "--cv-folds", "3",
            "--svm-kernel", "linear", "--svm-optimizer", "avltree", "--svm-max-iterations", "1000",
            "--random-state", "1"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--master", default="local[2]")
    p.add_argument("--keep", help="keep the datasets and results in this folder")
    opts = p.parse_args()
    spark_submit = os.environ.get("SPARK_SUBMIT") or os.path.join(REPO, ".venv", "bin", "spark-submit")
    work = opts.keep or tempfile.mkdtemp(prefix="bbha-bench-")
    datasets_path = os.path.join(work, "datasets")
    results_path = os.path.join(work, "results")
    planted = generate.write(os.path.join(datasets_path, APP), 200, 150, n_signal=5, seed=2017)
    common = ["--app-name", APP, "--molecules-dataset", f"{APP}/molecules.csv",
              "--clinical-dataset", f"{APP}/clinical.csv"] + JOB_ARGS
    env = dict(os.environ, DATASETS_PATH=datasets_path, RESULTS_PATH=results_path, JOB_NAME=APP)
    env.setdefault("PYSPARK_PYTHON", sys.executable)
    load_before = os.getloadavg()

    started = time.perf_counter()
    run = subprocess.run(
        [spark_submit, "--master", opts.master, "--driver-memory", "1g",
         "--py-files", os.path.join(SCRIPTS, "scripts.zip"), os.path.join(SCRIPTS, "main.py"), *common],
        env=env, capture_output=True, text=True,
    )
    wall = time.perf_counter() - started
    if run.returncode != 0:
        print(run.stdout[-3000:], run.stderr[-3000:], sep="\n")
        print(f"spark-submit exited {run.returncode}", file=sys.stderr)
        return 1
    with open(os.path.join(results_path, APP, "result.json")) as f:
        result = json.load(f)

    # The same run without Spark, in this process.
    os.environ["DATASETS_PATH"] = datasets_path
    from feature_selection import arguments, job
    from feature_selection.evaluators import SequentialEvaluator
    from feature_selection.models import ModelSpec

    args = arguments.parse(common)
    data = job.load(args, job.BBHA)
    sequential = SequentialEvaluator(ModelSpec.from_arguments(args), data)
    outcome, _ = job.search(job.BBHA, args, sequential, len(data.molecules), say=lambda m: None)
    evaluations = sum(len(s.evaluations) for s in outcome.steps)
    chosen = [m for m, keep in zip(data.molecules, outcome.best_mask) if keep]
    selected = " | ".join(chosen)
    load_after = os.getloadavg()

    cores = int(opts.master[len("local["):-1]) if opts.master.startswith("local[") and opts.master[6:-1].isdigit() else os.cpu_count()
    spark_rate = result["evaluations"] / result["evaluation_seconds"]
    sequential_rate = evaluations / sequential.seconds
    print(f"BBHA benchmark: 200 molecules x 150 samples, 15 stars, 5 iterations, 3 folds, svm linear, {opts.master}")
    print(f"  load average before / after:        {load_before[0]:.2f} / {load_after[0]:.2f} ({os.cpu_count()} CPUs)")
    print(f"  spark-submit wall time (JVM incl.): {wall:.1f} s")
    print(f"  evaluations:                        {result['evaluations']} (sequential run: {evaluations})")
    print(f"  Spark evaluation time:              {result['evaluation_seconds']:.1f} s = {spark_rate:.2f} evaluations/s")
    print(f"  sequential, one Python process:     {sequential.seconds:.1f} s = {sequential_rate:.2f} evaluations/s")
    print(f"  Spark / (sequential x {cores} cores):     {spark_rate / (sequential_rate * cores):.0%}")
    print(f"  best fitness: Spark {result['best_metric']:.4f}, sequential {outcome.best_fitness:.4f}; "
          f"same molecules: {'yes' if selected == result['features'] else 'NO'}")
    print(f"  search: {len(chosen)} molecules selected, {len(set(chosen) & set(planted))} of the "
          f"{len(planted)} planted; stars swallowed per iteration {outcome.swallowed}")
    if not opts.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if selected == result["features"] else 1


if __name__ == "__main__":
    sys.exit(main())
