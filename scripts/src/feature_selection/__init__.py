"""Multiomix's feature selection jobs, run by multiomix-aws-emr with spark-submit.

Two entry points (`main.py`: BBHA, `blind_search.py`: Blind Search) share this package,
shipped as scripts.zip with --py-files. Modules:

- `arguments`: the command line (Multiomix's `entrypoint_arguments` as `--name value`).
- `datasets`: reading and checking the molecules and clinical files.
- `models`: the fitness models (svm, rf, clustering) and the fitness of a subset.
- `bbha`: the Binary Black Hole Algorithm; `blind_search`: every subset.
- `evaluators`: running a batch of evaluations in this process or as Spark tasks.
- `results`: result.json, times.json and model.pkl, written atomically.
- `progress`: the progress report the search writes after each iteration or batch.
- `job`: a whole run, from arguments to exit status.
"""

__version__ = "1.0.0"
