"""Feature selection job run by multiomix-aws-emr, on EMR on EKS or with a local Spark.

The job ranks the molecules of a molecules x samples dataset by a simple, well-defined
criterion and writes the ranking under RESULTS_PATH/<app-name>/. Modules:

- `arguments`: the command line the service builds (`--name value` pairs).
- `datasets`: where datasets are, and reading them into Spark.
- `ranking`: the ranking itself, as Spark aggregations.
- `results`: writing the ranking and a summary for Multiomix to pick up.
- `job`: the whole run, from arguments to exit status.
"""

__version__ = "0.1.0"
