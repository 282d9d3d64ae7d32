#!/bin/sh
# Creates the Python environment with the tools of .ci/requirements.txt, unless it is
# already there and up to date, and prints where they are as shell assignments:
#   eval "$(.ci/python-env.sh)"
# sets MOTO_SERVER, SPARK_SUBMIT, SCHEMATHESIS, AWS_CLI_PROGRAM (the AWS CLI, for the
# tests of the pods' scripts) and PYSPARK_PYTHON (a pip-installed
# spark-submit finds Spark through PYSPARK_PYTHON; without it, it tries the system
# python3 and fails). Progress and warnings go to stderr; stdout has only assignments.
#
# Where the environment lives:
# - by default .venv at the repository root, reinstalled in place when the requirements
#   or the interpreter change;
# - with PYTHON_ENV_CACHE=DIR (what .ci/run sets), DIR/venv-KEY, where KEY is a digest
#   of .ci/requirements.txt, every file it includes with -r (recursively), and the
#   interpreter's version. A later run on the same machine finds it there, whatever
#   folder the repository was cloned into; any change to those files gives a new KEY and
#   so a new environment. Concurrent runs wait for each other (flock) while one creates it.
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
requirements="$repo/.ci/requirements.txt"
python=${PYTHON:-python3}

# Prints each requirements file and, after it, the files it includes with -r or
# --requirement, relative to the including file, depth first.
requirement_files() {
    echo "$1"
    sed -n -e 's/^[[:space:]]*-r[[:space:]]*\([^[:space:]#]*\).*/\1/p' \
        -e 's/^[[:space:]]*--requirement[=[:space:]]*\([^[:space:]#]*\).*/\1/p' "$1" |
        while read -r included; do
            case "$included" in
            /*) requirement_files "$included" ;;
            *) requirement_files "$(dirname "$1")/$included" ;;
            esac
        done
}

files=$(requirement_files "$requirements")
old_ifs=$IFS
IFS='
'
for file in $files; do
    if [ ! -f "$file" ]; then
        echo "python-env.sh: $file, included from $requirements, is missing" >&2
        exit 1
    fi
done
IFS=$old_ifs

# A digest of the requirement files' names (relative to the repository) and contents,
# and of the interpreter $1: what the environment is built from.
environment_key() {
    (
        IFS='
'
        for file in $files; do
            printf '%s\n' "${file#"$repo"/}"
            cat "$file"
        done
    )
    "$1" -VV
}

case "$repo" in *"'"*) echo "python-env.sh: repository path contains a quote: $repo" >&2; exit 1 ;; esac

if [ -n "${PYTHON_ENV_CACHE:-}" ]; then
    mkdir -p "$PYTHON_ENV_CACHE"
    key=$(environment_key "$python" | sha256sum | cut -c1-16)
    venv="$PYTHON_ENV_CACHE/venv-$key"
    # One creator at a time; the others find it made.
    exec 9>"$venv.lock"
    flock 9
else
    venv="$repo/.venv"
fi
case "$venv" in *"'"*) echo "python-env.sh: environment path contains a quote: $venv" >&2; exit 1 ;; esac

if [ ! -x "$venv/bin/python" ]; then
    echo "python-env.sh: creating $venv" >&2
    "$python" -m venv "$venv"
fi

# Reinstall only when the requirements or the interpreter changed, or a past install
# did not finish (the stamp is written last).
stamp="$venv/.requirements.sha256"
want=$(environment_key "$venv/bin/python" | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "python-env.sh: installing $requirements into $venv" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        --requirement "$requirements" >&2
    echo "$want" > "$stamp"
fi

for tool in moto_server spark-submit schemathesis aws; do
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
echo "AWS_CLI_PROGRAM='$venv/bin/aws'"
echo "PYSPARK_PYTHON='$venv/bin/python'"
