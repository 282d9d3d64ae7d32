#!/bin/sh
# Sidecar of the Spark driver pod: waits until the driver's main container has ended,
# then tells multiomix-aws-emr with PATCH /job/{id}, which starts the job-end notice to
# Multiomix. The call is a hint (the service asks EMR for the real state), so calling
# once too early is harmless while never calling delays the notice: every wait below is
# bounded, and on a timeout the sidecar calls anyway.
#
# EMR on EKS signals the end of the main container through its predefined volume
# `emr-container-communicate`: the main container touches the file
# main-container-terminated in it every two seconds. The driver has ended when the file
# is older than HEARTBEAT_TIMEOUT seconds or has disappeared.
#
# Environment (defaults in brackets):
#   EKS_EMR_SERVICE_URL    host name of the service [multiomix-aws-emr]
#   EKS_EMR_SERVICE_PORT   its port [8003]
#   EKS_EMR_SERVICE_PROTO  http or https [http]
#   CALLBACK_TOKEN         when set, sent as `Authorization: Bearer ...` (never logged)
#   POD_HOSTNAME           the pod's host name, spark-<job id>-driver [$HOSTNAME]
#   HEARTBEAT_FILE         [/var/log/fluentd/main-container-terminated]
#   START_TIMEOUT          seconds to wait for the first heartbeat [600]
#   HEARTBEAT_TIMEOUT      seconds without a heartbeat that mean the driver ended [15]
#   MAX_WAIT               seconds after which the sidecar stops waiting [604800]
#   CHECK_INTERVAL         seconds between looks at the heartbeat file [5]
#   ATTEMPTS               calls to the service before giving up [5]
#   ATTEMPT_TIMEOUT        seconds one call may take [10]
#   RETRY_DELAY            seconds between calls [3]
# Exit status: 0 when the service answered 2xx; 1 when every call failed or the service
# refused the call; 2 on a configuration error (no job id in the host name, bad numbers).

set -u

SERVICE_HOST=${EKS_EMR_SERVICE_URL:-multiomix-aws-emr}
PORT=${EKS_EMR_SERVICE_PORT:-8003}
PROTO=${EKS_EMR_SERVICE_PROTO:-http}
HEARTBEAT_FILE=${HEARTBEAT_FILE:-/var/log/fluentd/main-container-terminated}
START_TIMEOUT=${START_TIMEOUT:-600}
HEARTBEAT_TIMEOUT=${HEARTBEAT_TIMEOUT:-15}
MAX_WAIT=${MAX_WAIT:-604800}
CHECK_INTERVAL=${CHECK_INTERVAL:-5}
ATTEMPTS=${ATTEMPTS:-5}
ATTEMPT_TIMEOUT=${ATTEMPT_TIMEOUT:-10}
RETRY_DELAY=${RETRY_DELAY:-3}

log() {
    printf '%s sidecar: %s\n' "$(date -u '+%Y-%m-%dT%H:%M:%SZ')" "$*" >&2
}

fail_config() {
    log "$*"
    exit 2
}

# Whole seconds, for the timeouts compared with `date +%s`.
require_whole() {
    case $2 in
        '' | *[!0-9]*) fail_config "$1 must be a whole number of seconds, not '$2'" ;;
    esac
}

# Seconds that may have a fraction, for sleep and curl.
require_seconds() {
    case $2 in
        '' | .* | *.*.* | *[!0-9.]*) fail_config "$1 must be a number of seconds, not '$2'" ;;
    esac
}

require_whole START_TIMEOUT "$START_TIMEOUT"
require_whole HEARTBEAT_TIMEOUT "$HEARTBEAT_TIMEOUT"
require_whole MAX_WAIT "$MAX_WAIT"
require_whole ATTEMPTS "$ATTEMPTS"
[ "$ATTEMPTS" -ge 1 ] || fail_config "ATTEMPTS must be at least 1"
require_seconds CHECK_INTERVAL "$CHECK_INTERVAL"
require_seconds ATTEMPT_TIMEOUT "$ATTEMPT_TIMEOUT"
require_seconds RETRY_DELAY "$RETRY_DELAY"
case $PROTO in
    http | https) ;;
    *) fail_config "EKS_EMR_SERVICE_PROTO must be http or https, not '$PROTO'" ;;
esac

# The driver pod is named spark-<job id>-driver: the id is the second `-`-separated field.
POD_HOSTNAME=${POD_HOSTNAME:-${HOSTNAME:-$(hostname)}}
case $POD_HOSTNAME in
    *-*) rest=${POD_HOSTNAME#*-}; JOB_ID=${rest%%-*} ;;
    *) JOB_ID= ;;
esac
case $JOB_ID in
    '' | *[!0-9a-z]*) fail_config "no job id in the host name '$POD_HOSTNAME'" ;;
esac
[ "${#JOB_ID}" -le 64 ] || fail_config "no job id in the host name '$POD_HOSTNAME' (too long)"

URL="$PROTO://$SERVICE_HOST:$PORT/job/$JOB_ID"

# One PATCH; prints the HTTP status (000 when there was no answer). The token goes to
# curl on its standard input, so it shows neither in the process list nor in logs.
call_service() {
    if [ -n "${CALLBACK_TOKEN:-}" ]; then
        printf 'Authorization: Bearer %s\n' "$CALLBACK_TOKEN" |
            curl --silent --show-error --output /dev/null --write-out '%{http_code}' \
                --max-time "$ATTEMPT_TIMEOUT" -X PATCH \
                -H 'Content-Type: application/json' -H @- \
                -d '{"state":"Terminated"}' "$URL"
    else
        curl --silent --show-error --output /dev/null --write-out '%{http_code}' \
            --max-time "$ATTEMPT_TIMEOUT" -X PATCH \
            -H 'Content-Type: application/json' \
            -d '{"state":"Terminated"}' "$URL"
    fi
}

notify() {
    # The calls are bounded: let them finish even if a stop signal comes meanwhile.
    trap '' TERM INT
    attempt=1
    while :; do
        status=$(call_service)
        case $status in
            2??)
                log "told the service that job $JOB_ID ended (HTTP $status)"
                exit 0
                ;;
            4??)
                # A refusal (wrong token, unknown job) will not change on retry; 408 and
                # 429 are about timing, so they are retried like a failure.
                case $status in
                    408 | 429) ;;
                    *)
                        log "the service refused the call for job $JOB_ID (HTTP $status)"
                        exit 1
                        ;;
                esac
                ;;
        esac
        log "call $attempt/$ATTEMPTS to $URL failed (HTTP ${status:-000})"
        if [ "$attempt" -ge "$ATTEMPTS" ]; then
            log "giving up: the service will find the end of job $JOB_ID when it next checks its jobs"
            exit 1
        fi
        attempt=$((attempt + 1))
        pause "$RETRY_DELAY"
    done
}

# sleep in the background so that a TERM is handled at once, not after the sleep.
pause() {
    sleep "$1" &
    wait $!
}

# Kubernetes stops the sidecar when the pod is deleted, which happens when the job ends
# or is cancelled: call the service before leaving.
on_term() {
    log "stopped by a signal while waiting: calling the service now"
    notify
}
trap on_term TERM INT

start=$(date +%s)
deadline=$((start + MAX_WAIT))
start_deadline=$((start + START_TIMEOUT))
[ "$start_deadline" -le "$deadline" ] || start_deadline=$deadline

log "job $JOB_ID: waiting for the driver to end (heartbeat file $HEARTBEAT_FILE)"
while [ ! -e "$HEARTBEAT_FILE" ]; do
    if [ "$(date +%s)" -ge "$start_deadline" ]; then
        log "no heartbeat after $((start_deadline - start))s (is emr-container-communicate mounted?): calling the service anyway"
        notify
    fi
    pause "$CHECK_INTERVAL"
done

while :; do
    now=$(date +%s)
    if ! beat=$(stat -c %Y "$HEARTBEAT_FILE" 2>/dev/null); then
        log "the heartbeat file is gone: the driver has ended"
        break
    fi
    if [ $((now - beat)) -gt "$HEARTBEAT_TIMEOUT" ]; then
        log "no heartbeat for $((now - beat))s: the driver has ended"
        break
    fi
    if [ "$now" -ge "$deadline" ]; then
        log "still running after MAX_WAIT=${MAX_WAIT}s: calling the service anyway"
        break
    fi
    pause "$CHECK_INTERVAL"
done
notify
