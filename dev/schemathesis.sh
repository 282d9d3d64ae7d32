#!/usr/bin/env bash
# Fuzzes the running service with schemathesis, driven by its own OpenAPI document.
#
# Starts fake-emr, fake-multiomix and the service (debug builds, loopback only, both
# bearer tokens set), then runs schemathesis against GET /openapi.json with these checks:
# no 5xx, every status code, content type, header and body as documented. Exits non-zero
# when schemathesis finds a failure or something does not start. Stops everything it
# started on exit.
#
# Environment:
#   SCHEMATHESIS        the schemathesis executable (default: .venv/bin/st, else schemathesis)
#   ST_MAX_EXAMPLES     examples per operation (default 100, about a minute in all)
#   ST_SEED             fixed seed, to repeat a run
#   ST_EXTRA_ARGS       more `st run` options, split on spaces (e.g. "--report junit")
#   SKIP_BUILD=1        use the binaries already built
#   CARGO_TARGET_DIR    where the debug binaries are (default: target/)
#
# Set up schemathesis once with:
#   python3 -m venv .venv && .venv/bin/pip install schemathesis
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

if [[ -n "${SCHEMATHESIS:-}" ]]; then
    st=$SCHEMATHESIS
elif [[ -x "$root/.venv/bin/st" ]]; then
    st=$root/.venv/bin/st
else
    st=schemathesis
fi
if ! command -v "$st" >/dev/null 2>&1; then
    echo "schemathesis.sh: '$st' not found; set SCHEMATHESIS or create .venv (see the header)" >&2
    exit 2
fi

target=${CARGO_TARGET_DIR:-$root/target}
bin=$target/debug
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    cargo build --quiet --workspace --bins
fi
for b in multiomix-aws-emr fake-emr fake-multiomix; do
    [[ -x "$bin/$b" ]] || { echo "schemathesis.sh: $bin/$b is missing; build it first" >&2; exit 2; }
done

work=$(mktemp -d)
pids=()
cleanup() {
    local status=$?
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [[ $status -ne 0 && -f "$work/service.log" ]]; then
        echo "--- last lines of the service log ---" >&2
        tail -n 40 "$work/service.log" >&2 || true
    fi
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Waits for "listening on URL" in a log file and prints URL.
listening_url() {
    local log=$1
    for _ in $(seq 1 100); do
        local url
        url=$(sed -n 's/^listening on \(http:[^ ]*\).*/\1/p' "$log" | head -n 1)
        if [[ -n "$url" ]]; then
            echo "$url"
            return 0
        fi
        sleep 0.1
    done
    echo "schemathesis.sh: no 'listening on' line in $log:" >&2
    cat "$log" >&2
    return 1
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

virtual_cluster=schemathesis00000000000000
"$bin/fake-emr" --port 0 --virtual-cluster-id "$virtual_cluster" >"$work/fake-emr.log" 2>&1 &
pids+=($!)
"$bin/fake-multiomix" --port 0 >"$work/fake-multiomix.log" 2>&1 &
pids+=($!)
emr_url=$(listening_url "$work/fake-emr.log")
multiomix_url=$(listening_url "$work/fake-multiomix.log")

port=$(free_port)
base=http://127.0.0.1:$port
API_TOKEN=api-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
CALLBACK_TOKEN=callback-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
export API_TOKEN CALLBACK_TOKEN

env -i PATH="$PATH" \
    JOB_BACKEND=emr \
    EMR_VIRTUAL_CLUSTER_ID="$virtual_cluster" \
    EMR_EXECUTION_ROLE_ARN=arn:aws:iam::123456789012:role/emr-job \
    EMR_S3_BUCKET=multiomix-bucket \
    AWS_ENDPOINT_URL="$emr_url" \
    AWS_DEFAULT_REGION=us-east-1 \
    AWS_ACCESS_KEY_ID=AKIDSCHEMATHESIS \
    AWS_SECRET_ACCESS_KEY=schemathesis-secret \
    AWS_EC2_METADATA_DISABLED=true \
    MULTIOMIX_URL="$multiomix_url/" \
    DATABASE_URL="sqlite:$work/store.db" \
    HOST=127.0.0.1 \
    PORT="$port" \
    SLEEP_TIME=0.1 \
    POLL_INTERVAL=0.1 \
    API_TOKEN="$API_TOKEN" \
    CALLBACK_TOKEN="$CALLBACK_TOKEN" \
    RUST_LOG=warn \
    "$bin/multiomix-aws-emr" >"$work/service.log" 2>&1 &
pids+=($!)

for _ in $(seq 1 100); do
    if curl -fsS "$base/health" >/dev/null 2>&1; then
        break
    fi
    if ! kill -0 "${pids[-1]}" 2>/dev/null; then
        echo "schemathesis.sh: the service exited at start-up" >&2
        exit 1
    fi
    sleep 0.1
done
curl -fsS "$base/ready" >/dev/null

echo "schemathesis $("$st" --version 2>/dev/null | awk '{print $NF}') against $base"
seed_args=()
if [[ -n "${ST_SEED:-}" ]]; then
    seed_args=(--seed "$ST_SEED")
fi
"$st" --config-file "$root/dev/schemathesis.toml" run "$base/openapi.json" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
    --mode all \
    --max-examples "${ST_MAX_EXAMPLES:-100}" \
    --workers 1 \
    --request-timeout 10 \
    --generation-database none \
    --no-color \
    ${ST_EXTRA_ARGS:-} \
    "${seed_args[@]}"
