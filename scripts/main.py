"""Entry point of the feature selection job (spark-submit runs this file).

The code is in the `feature_selection` package, shipped as scripts.zip with --py-files.
Usage: main.py --app-name NAME --molecules-dataset PATH [--clinical-dataset PATH]
               [--clinical-column time] [--top N] [--any-other-name value ...]
Paths are relative to DATASETS_PATH; results go to RESULTS_PATH/NAME/.
"""

import sys

from feature_selection.job import run

if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
