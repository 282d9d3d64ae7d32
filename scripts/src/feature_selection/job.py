"""One run of the job, from command line to exit status.

Exit status: 0 done, 2 unusable command line, 3 missing or unusable dataset, 1 anything
else. Arguments and datasets are checked before Spark starts, so a bad request fails in
a second rather than after the JVM is up.
"""

import os
import sys
import time
from typing import List, Optional

from . import __version__, arguments, datasets, results

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_DATASET = 3

# Settings for a local master only: a single machine gains nothing from the web UI or
# from 200 shuffle partitions, and both slow small jobs down. On a cluster the
# deployment's settings stand. Anything given with --conf wins over these.
_LOCAL_CONF = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.shuffle.partitions": "4",
    "spark.default.parallelism": "4",
    "spark.sql.adaptive.enabled": "true",
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.log.level": "WARN",
}


def _log(message: str) -> None:
    print(f"[feature-selection] {message}", file=sys.stderr, flush=True)


def _spark(app_name: str):
    from pyspark import SparkConf
    from pyspark.sql import SparkSession

    conf = SparkConf()
    builder = SparkSession.builder.appName(app_name)
    if conf.get("spark.master", "local[*]").startswith("local"):
        for key, value in _LOCAL_CONF.items():
            if not conf.contains(key):
                builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def run(argv: List[str]) -> int:
    started = time.monotonic()
    try:
        args = arguments.parse(argv)
    except arguments.UsageError as e:
        _log(f"error: {e}")
        return EXIT_USAGE

    try:
        molecules_path = datasets.resolve(args.molecules_dataset)
        datasets.header(molecules_path)
        clinical_path: Optional[str] = None
        if args.clinical_dataset:
            clinical_path = datasets.resolve(args.clinical_dataset)
            _, columns = datasets.header(clinical_path)
            if args.clinical_column not in columns[1:]:
                raise datasets.DatasetError(
                    f"clinical dataset {args.clinical_dataset!r} has no column "
                    f"{args.clinical_column!r} (columns: {', '.join(columns)})"
                )
    except datasets.DatasetError as e:
        _log(f"error: {e}")
        return EXIT_DATASET

    _log(f"app {args.app_name}: molecules {molecules_path}, clinical {clinical_path or '-'}")
    from . import ranking  # imports pyspark; kept out of the argument checks above

    spark = _spark(args.app_name)
    try:
        molecules = datasets.read_csv(spark, molecules_path)
        clinical = datasets.read_csv(spark, clinical_path) if clinical_path else None
        criterion, n_samples, ranked = ranking.rank(molecules, clinical, args.clinical_column)
    except datasets.DatasetError as e:
        _log(f"error: {e}")
        return EXIT_DATASET
    finally:
        spark.stop()

    kept = ranked[: args.top] if args.top else ranked
    summary = {
        "app_name": args.app_name,
        "job_name": os.environ.get("JOB_NAME"),
        "criterion": criterion,
        "clinical_column": args.clinical_column if clinical_path else None,
        "molecules_dataset": args.molecules_dataset,
        "clinical_dataset": args.clinical_dataset,
        "molecules_ranked": len(ranked),
        "molecules_written": len(kept),
        "samples": n_samples,
        "parameters": args.extra,
        "seconds": round(time.monotonic() - started, 3),
        "version": __version__,
    }
    out = results.write(args.app_name, kept, summary)
    best = f"best {kept[0][0]} ({kept[0][1]:.4g})" if kept else "no molecule could be scored"
    _log(f"ranked {len(ranked)} molecules by {criterion}; {best}; wrote {out}")
    return EXIT_OK
