"""One run of a job, from command line to exit status.

Exit status: 0 done, 2 unusable command line, 3 missing or unusable dataset, 1 anything
else (no result.json then). Arguments and datasets are checked before Spark starts, so a
bad request fails in a second with a one-line message first in the log.
"""

import os
import sys
import time
from typing import List, Optional

import numpy as np

from . import __version__, arguments, bbha, blind_search, datasets, progress, remote, results
from .models import ModelSpec, fit_final

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_DATASET = 3

BBHA = "BBHA"
BLIND_SEARCH = "Blind Search"

# Settings for a local master only: a single machine gains nothing from the web UI, and
# the driver stays on the loopback. On a cluster the deployment's settings stand.
# Anything given with --conf wins over these.
_LOCAL_CONF = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.log.level": "WARN",
}


def log(message: str) -> None:
    print(f"[feature-selection] {message}", file=sys.stderr, flush=True)


def spark_context(app_name: str):
    from pyspark import SparkConf, SparkContext

    conf = SparkConf().setAppName(app_name)
    if conf.get("spark.master", "local[*]").startswith("local"):
        for key, value in _LOCAL_CONF.items():
            if not conf.contains(key):
                conf.set(key, value)
    sc = SparkContext.getOrCreate(conf)
    sc.setLogLevel("WARN")
    return sc


def load(args: arguments.JobArguments, algorithm: str) -> datasets.Data:
    """Reads the datasets with the checks the model needs; raises DatasetError."""
    if args.model == "clustering":
        need = dict(min_samples=args.number_of_clusters + 1, min_events=1)
    else:
        # Stratified folds: every fold needs an event for its C-index.
        need = dict(min_samples=args.cv_folds, min_events=args.cv_folds)
    data = datasets.read(
        args.molecules_dataset,
        args.clinical_dataset,
        positive_times=args.model == "svm" and args.svm_is_regression,
        **need,
    )
    if algorithm == BLIND_SEARCH and len(data.molecules) > blind_search.MAX_MOLECULES:
        n = len(data.molecules)
        raise datasets.DatasetError(
            f"{args.molecules_dataset}: {n} molecules is too many for Blind Search "
            f"(2^{n} - 1 subsets); the limit is {blind_search.MAX_MOLECULES} molecules "
            f"({2 ** blind_search.MAX_MOLECULES - 1} subsets)"
        )
    return data


def reporter(algorithm: str, args: arguments.JobArguments, n_molecules: int, target, say=log):
    """The progress reporter of a run (see progress.py): BBHA reports its initial stars and
    each iteration; Blind Search each batch, at most every BLIND_SEARCH_INTERVAL seconds."""
    if algorithm == BBHA:
        return progress.Reporter(
            args.app_name, progress.BBHA, args.bbha_iterations,
            bbha.evaluations_total(args.n_stars, args.bbha_iterations, n_extra=1),
            target, log=say,
        )
    return progress.Reporter(
        args.app_name, progress.BLIND_SEARCH, blind_search.chunks(n_molecules),
        blind_search.evaluations_total(n_molecules), target, log=say,
        min_interval=progress.BLIND_SEARCH_INTERVAL,
    )


def search(algorithm: str, args: arguments.JobArguments, evaluator, n_molecules: int, say=log,
           progress_to=None):
    """Runs the algorithm; returns (outcome, fitness with all features or None). With
    `progress_to` (a progress.LocalFile or S3Object) the search reports its progress there."""
    report = None if progress_to is None else reporter(algorithm, args, n_molecules, progress_to, say)
    if algorithm == BBHA:
        everything = np.ones(n_molecules, dtype=bool)
        threshold = "random" if args.binary_threshold is None else args.binary_threshold
        if args.bbha_version == bbha.IMPROVED:
            say(f"improved BBHA (coeff-1 {args.coeff_1}, coeff-2 {args.coeff_2}), threshold {threshold}")
        else:
            say(f"original BBHA, threshold {threshold}")
        outcome = bbha.run(
            evaluator,
            n_molecules,
            n_stars=args.n_stars,
            iterations=args.bbha_iterations,
            seed=args.random_state,
            threshold=args.binary_threshold,
            version=args.bbha_version,
            coeff_1=args.coeff_1,
            coeff_2=args.coeff_2,
            extra_masks=[everything],
            log=say,
            progress=report,
        )
        all_features = outcome.steps[0].evaluations[-1].fitness
    else:
        outcome = blind_search.run(evaluator, n_molecules, log=say, progress=report)
        all_features = outcome.steps[-1].evaluations[-1].fitness  # the last subset is all
    return outcome, all_features


def times_table(outcome: bbha.Outcome, n_samples: int, parameters: str):
    """The times file: one entry per successful evaluation in each list, with the meaning
    Multiomix's times records give them (MULTIOMIX_JOBS.md, "The times file")."""
    table = {k: [] for k in (
        "number_of_features", "execution_times", "fitness", "times_by_iteration",
        "test_times", "train_scores", "number_of_iterations",
    )}
    failed = 0
    for step in outcome.steps:
        for e in step.evaluations:
            if not np.isfinite(e.fitness):
                failed += 1
                continue
            table["number_of_features"].append(e.n_features)
            table["execution_times"].append(round(e.seconds, 6))
            table["fitness"].append(e.fitness)
            # svm: mean over the folds of fit seconds / optimizer iterations; else 0.0.
            table["times_by_iteration"].append(round(e.seconds_per_iteration, 9))
            table["test_times"].append(round(e.test_seconds, 9))
            table["train_scores"].append(e.train_score)
            # svm: mean over the folds of optimizer_result_.nit; rf and clustering 0.
            table["number_of_iterations"].append(e.iterations)
    table["number_of_samples"] = n_samples
    table["parameters"] = parameters
    return table, failed


def run(argv: List[str], algorithm: str = BBHA) -> int:
    started = time.monotonic()
    try:
        args = arguments.parse(argv)
    except arguments.UsageError as e:
        log(f"error: {e}")
        return EXIT_USAGE
    # DATASETS_PATH and RESULTS_PATH may be s3:// (EMR Serverless): inputs are copied to
    # local disk first, results uploaded after; see remote.py.
    scratch = remote.workdir()
    try:
        try:
            remote.fetch_datasets([args.molecules_dataset, args.clinical_dataset], scratch)
        except datasets.DatasetError as e:
            log(f"error: {e}")
            return EXIT_DATASET
        progress_to = progress_destination(args.app_name)
        output = remote.Results(scratch)
        code = run_parsed(args, algorithm, started, progress_to)
        if code == EXIT_OK:
            try:
                url = output.publish(args.app_name)
            except remote.UploadError as e:
                log(f"error: {e}")
                return EXIT_FAILED
            if url:
                log(f"uploaded the results to {url}")
        return code
    finally:
        remote.cleanup(scratch)


def progress_destination(app_name: str):
    """Where the progress reports go: PROGRESS_PATH when set (on EMR on EKS with S3
    staging the driver's RESULTS_PATH is a folder of its pod, which the service cannot
    read, so the service names the S3 results prefix there), else RESULTS_PATH as the job
    received it (before remote.Results points an s3:// one at a local folder). None, with
    a warning, when it cannot be used: the job runs on without reports."""
    try:
        where = os.environ.get("PROGRESS_PATH") or os.environ.get("RESULTS_PATH")
        return progress.destination(where, app_name)
    except ValueError as e:
        log(f"warning: no progress reports: {e}")
        return None


def run_parsed(args: arguments.JobArguments, algorithm: str, started: float, progress_to=None) -> int:
    try:
        data = load(args, algorithm)
    except datasets.DatasetError as e:
        log(f"error: {e}")
        return EXIT_DATASET

    spec = ModelSpec.from_arguments(args)
    parameters = arguments.parameters_string(args)
    log(
        f"{algorithm} for {args.app_name}: {len(data.molecules)} molecules x "
        f"{len(data.samples)} samples ({int(data.event.sum())} events), model {args.model} "
        f"({parameters}), feature-selection {__version__}"
    )
    from .evaluators import SparkEvaluator

    sc = spark_context(args.app_name)
    evaluator = None
    try:
        # One task per (subset, fold) unit (per subset for clustering); see evaluators.py.
        evaluator = SparkEvaluator(sc, spec, data)
        if args.debug:
            log(
                f"Spark master {sc.master}, default parallelism {sc.defaultParallelism}, "
                f"{len(evaluator.plan)} unit(s) per evaluation, units per task {evaluator.setting}"
            )
        outcome, all_features = search(algorithm, args, evaluator, len(data.molecules), log,
                                       progress_to=progress_to)
    finally:
        if evaluator is not None:
            evaluator.close()
        sc.stop()

    if args.debug:
        for step in outcome.steps:
            for e in step.evaluations:
                log(
                    f"iteration {step.iteration}: {e.n_features} molecules, fitness "
                    f"{e.fitness:.4f}, {e.seconds:.3f} s" + (f", {e.error}" if e.error else "")
                )
    if not np.isfinite(outcome.best_fitness):
        errors = {e.error for s in outcome.steps for e in s.evaluations if e.error}
        log(f"error: no subset could be evaluated: {'; '.join(sorted(errors))[:500]}")
        return EXIT_FAILED
    return finish(args, algorithm, data, spec, parameters, outcome, all_features, started, evaluator)


def finish(args, algorithm, data, spec, parameters, outcome, all_features, started, evaluator) -> int:
    # data.molecules is sorted by identifier, so `selected`, the columns model.pkl is
    # fitted on and Multiomix's np.intersect1d(molecules, features) share one order.
    selected = [m for m, keep in zip(data.molecules, outcome.best_mask) if keep]
    model = fit_final(spec, data.X, data.event, data.time, outcome.best_mask)
    times, failed = times_table(outcome, len(data.samples), parameters)
    evaluations = sum(len(s.evaluations) for s in outcome.steps)
    result = {
        "features": results.features_field(selected),
        "best_metric": outcome.best_fitness,
        "dataset": os.path.basename(os.path.dirname(args.molecules_dataset)) or args.app_name,
        "model": args.model,
        "improved": int(bool(np.isfinite(all_features) and outcome.best_fitness > all_features)),
        "best_metric_with_all_features": all_features if np.isfinite(all_features) else None,
        "execution_time": round(time.monotonic() - started, 3),
        "algorithm": algorithm,
        "parameters": parameters,
        "number_of_features": len(selected),
        "number_of_samples": len(data.samples),
        "evaluations": evaluations,
        "failed_evaluations": failed,
        "evaluation_seconds": round(evaluator.seconds, 3),
        "random_state": args.random_state,
        "cv_folds": args.cv_folds if args.model != "clustering" else None,
        "version": __version__,
    }
    if failed:
        first = next(e.error for s in outcome.steps for e in s.evaluations if e.error)
        log(f"warning: {failed} of {evaluations} evaluations failed and lost; the first: {first}")
    out = results.write(args.app_name, result, times, model)
    log(
        f"selected {len(selected)} of {len(data.molecules)} molecules, fitness "
        f"{outcome.best_fitness:.4f} (all molecules: {all_features:.4f}); {evaluations} "
        f"evaluations in {evaluator.seconds:.1f} s; wrote {out}"
    )
    return EXIT_OK


def main(algorithm: str, argv: Optional[List[str]] = None) -> int:
    try:
        return run(sys.argv[1:] if argv is None else argv, algorithm)
    except Exception as e:  # the message first and short; the traceback after it
        import traceback

        log(f"error: {type(e).__name__}: {e}")
        traceback.print_exc()
        return EXIT_FAILED
