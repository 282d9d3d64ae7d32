#!/usr/bin/env bash
# Runs every test of the project. This is the test command of the README, and CI runs
# exactly this (see .ci/run).
#
# 1. Creates .venv (moto, pyspark, schemathesis, the AWS CLI) on first use:
#    .ci/python-env.sh (under PYTHON_ENV_CACHE instead when that is set, as .ci/run does).
# 2. The Rust tests of the whole workspace: unit tests, integration tests against the
#    fakes, the moto conformance tests, and the real pyspark run of the example job.
#    Under nextest, .config/nextest.toml keeps the JVM and moto tests from running at once.
# 3. The example job's Python tests.
# 4. schemathesis against the live service, from its OpenAPI document.
# Before 2, headless Chromium for the admin pages' browser test (tests/integration/admin_pages.rs),
# from Debian's packages, when it is missing and this runs as root with apt-get; the test
# fails under CI without it, and is skipped with a message elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1 &&
    command -v apt-get >/dev/null 2>&1 && [[ $(id -u) == 0 ]]; then
    echo "test.sh: installing chromium (Debian's package) for the browser test" >&2
    { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium ||
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }; } >&2 ||
        echo "test.sh: chromium could not be installed; the browser test will say so" >&2
fi

eval "$(.ci/python-env.sh)"
export MOTO_SERVER SCHEMATHESIS PYSPARK_PYTHON AWS_CLI_PROGRAM
# The real spark-submit, for the test that runs the example job through the service.
# (Not SPARK_SUBMIT: that is the service's own variable.)
export REAL_SPARK_SUBMIT="$SPARK_SUBMIT"
unset SPARK_SUBMIT

if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast
else
    cargo test --workspace --no-fail-fast
fi

# The example job's own tests (argument parsing, the committed zip, real spark-submit runs),
# with the environment's spark-submit wherever it is (.venv, or CI's cached environment).
SPARK_SUBMIT="$REAL_SPARK_SUBMIT" "$PYSPARK_PYTHON" -m unittest discover -s scripts/tests

if [ -x dev/schemathesis.sh ]; then
    dev/schemathesis.sh
fi
