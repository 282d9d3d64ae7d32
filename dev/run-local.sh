#!/usr/bin/env bash
# Runs the service on its embedded default, the local backend: jobs run as local
# spark-submit processes, with the feature selection jobs of scripts/ (BBHA: main.py,
# Blind Search: blind_search.py) and the datasets of examples/datasets (Multiomix sends
# paths like example/molecules.csv under it). No AWS account needed. Listens on
# http://127.0.0.1:8003.
#
# Creates .venv with pyspark on first use (a few minutes), then starts the service in the
# foreground; Ctrl-C stops it. Any variable of docs/configuration.md can be set before the
# command.
set -euo pipefail
cd "$(dirname "$0")/.."

eval "$(.ci/python-env.sh)"
export SPARK_SUBMIT PYSPARK_PYTHON
export JOB_BACKEND="${JOB_BACKEND:-local}"
export DATASETS_PATH="${DATASETS_PATH:-$PWD/examples/datasets}"
export RESULTS_PATH="${RESULTS_PATH:-$PWD/data/results}"
export MULTIOMIX_URL="${MULTIOMIX_URL:-http://127.0.0.1:8000/feature-selection/aws-notification/}"
export HOST="${HOST:-127.0.0.1}"
export SPARK_MASTER="${SPARK_MASTER:-local[2]}"
export ALGO_BBHA_ENTRYPOINT="${ALGO_BBHA_ENTRYPOINT:-main.py}"
export ALGO_BLIND_SEARCH_ENTRYPOINT="${ALGO_BLIND_SEARCH_ENTRYPOINT:-blind_search.py}"
export EMR_DRIVER_MEMORY="${EMR_DRIVER_MEMORY:-1g}"
mkdir -p "$RESULTS_PATH"
exec cargo run --release --bin multiomix-aws-emr
