"""BBHA feature selection (Multiomix's `"algorithm": 1`); spark-submit runs this file.

The code is in the `feature_selection` package, shipped as scripts.zip with --py-files.
Arguments: see scripts/README.md. Exit status: 0 done, 2 bad arguments, 3 unusable
datasets, 1 other failure.
"""

import sys

from feature_selection.job import BBHA, main

if __name__ == "__main__":
    sys.exit(main(BBHA))
