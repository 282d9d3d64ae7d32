"""Blind Search feature selection (`"algorithm": 0`): every non-empty subset of the
molecules. spark-submit runs this file; set ALGO_BLIND_SEARCH_ENTRYPOINT=blind_search.py.

Same arguments, exit statuses and result files as main.py (see scripts/README.md); BBHA's
n-stars and bbha-iterations are accepted and unused.
"""

import sys

from feature_selection.job import BLIND_SEARCH, main

if __name__ == "__main__":
    sys.exit(main(BLIND_SEARCH))
