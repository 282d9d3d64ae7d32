#!/bin/sh
# Creates .venv at the repository root with the tools of .ci/requirements.txt, unless it
# is already there and up to date, and prints where they are as shell assignments:
#   eval "$(.ci/python-env.sh)"
# sets MOTO_SERVER, SPARK_SUBMIT, SCHEMATHESIS and PYSPARK_PYTHON (a pip-installed
# spark-submit finds Spark through PYSPARK_PYTHON; without it, it tries the system
# python3 and fails). Progress and warnings go to stderr; stdout has only assignments.
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
venv="$repo/.venv"
requirements="$repo/.ci/requirements.txt"
# Files the requirements include with -r; a change to any of them reinstalls too.
included="$repo/scripts/requirements.txt"
python=${PYTHON:-python3}

case "$repo" in *"'"*) echo "python-env.sh: repository path contains a quote: $repo" >&2; exit 1 ;; esac

if [ ! -x "$venv/bin/python" ]; then
    echo "python-env.sh: creating $venv" >&2
    "$python" -m venv "$venv"
fi

# Reinstall only when the requirements (or a file they include) or the interpreter changed.
stamp="$venv/.requirements.sha256"
want=$( (cat "$requirements" "$included"; "$venv/bin/python" -VV) | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "python-env.sh: installing $requirements" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        --requirement "$requirements" >&2
    echo "$want" > "$stamp"
fi

for tool in moto_server spark-submit schemathesis; do
    if [ ! -x "$venv/bin/$tool" ]; then
        echo "python-env.sh: $venv/bin/$tool is missing after install" >&2
        exit 1
    fi
done
if ! command -v java >/dev/null 2>&1 && [ -z "${JAVA_HOME:-}" ]; then
    echo "python-env.sh: warning: no java on PATH and no JAVA_HOME; spark-submit needs Java 17+" >&2
fi

echo "MOTO_SERVER='$venv/bin/moto_server'"
echo "SPARK_SUBMIT='$venv/bin/spark-submit'"
echo "SCHEMATHESIS='$venv/bin/schemathesis'"
echo "PYSPARK_PYTHON='$venv/bin/python'"
