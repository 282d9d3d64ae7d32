#!/bin/sh
# Sidecar of the Spark driver pod: waits until the driver's main container has ended,
# uploads the job's results to S3 (when RESULTS_S3_URI is set), then tells
# multiomix-aws-emr with PATCH /job/{id}, which starts the job-end notice to Multiomix.
# The call is a hint (the service asks EMR for the real state), so calling once too early
# is harmless while never calling delays the notice: every wait and every upload below is
# bounded, and whatever happens to the upload the sidecar calls the service.
#
# EMR on EKS signals the end of the main container through its predefined volume
# `emr-container-communicate`: the main container touches the file
# main-container-terminated in it every two seconds. The driver has ended when the file
# is older than HEARTBEAT_TIMEOUT seconds or has disappeared.
#
# The results: the job writes RESULTS_PATH/<app-name>/ (all at once: it renames a
# finished folder into place). The sidecar copies it to ${RESULTS_S3_URI}<app-name>/,
# every file but result.json first and result.json last, so that a folder in S3 with a
# result.json is always complete; multiomix-aws-emr downloads it from there into
# Multiomix's results folder before the notice. No folder (a failed job) means nothing
# to upload. The app name comes from the driver pod's annotation
# multiomix-aws-emr/app-name (set by the service with DATA_STAGING=s3) as APP_NAME.
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
#   RETRY_DELAY            seconds between calls, and between upload attempts [3]
#   RESULTS_S3_URI         s3://bucket/prefix/ to upload the results under; unset or
#                          empty: no upload, the sidecar only calls the service []
#   APP_NAME               the job's app name, one path segment (from the annotation) []
#   RESULTS_PATH           the folder the job writes its results under [/var/results]
#   UPLOAD_ATTEMPTS        tries of the whole upload before giving up [3]
#   UPLOAD_TIMEOUT         seconds each AWS CLI call of a try may take (a try makes two:
#                          the other files, then result.json) [300]
#   STOP_UPLOAD_TIMEOUT    after a stop signal while waiting: one try only, each call
#                          bounded by this, so the call to the service still fits in
#                          the pod's grace period [15]
#   AWS_CLI                the AWS CLI program [aws]
# Credentials for S3 come from the pod (the job execution role through IRSA).
# A stop signal (the pod is being deleted) while waiting: one short upload, then the call.
# A stop signal during an upload ends the upload at once, then the call.
# Exit status: 0 when the service answered 2xx and the results (if any were to go up)
# went up; 3 when the service answered 2xx but the results could not be uploaded (the
# service then keeps trying to download them and says so on GET /job/{id}); 1 when
# every call failed or the service refused the call; 2 on a configuration error (no job
# id in the host name, bad numbers, a RESULTS_S3_URI that is not s3://). An empty or
# unsafe APP_NAME is no reason to withhold the call: it is logged, and the sidecar calls
# the service without uploading.

set -u
# Character ranges below mean ASCII letters and digits, whatever the image's locale.
LC_ALL=C
export LC_ALL

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
RESULTS_S3_URI=${RESULTS_S3_URI:-}
APP_NAME=${APP_NAME:-}
RESULTS_PATH=${RESULTS_PATH:-/var/results}
UPLOAD_ATTEMPTS=${UPLOAD_ATTEMPTS:-3}
UPLOAD_TIMEOUT=${UPLOAD_TIMEOUT:-300}
STOP_UPLOAD_TIMEOUT=${STOP_UPLOAD_TIMEOUT:-15}
AWS_CLI=${AWS_CLI:-aws}

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

# Seconds above zero, for `timeout` (to which 0 means no limit at all).
require_positive() {
    require_seconds "$1" "$2"
    case $2 in
        *[1-9]*) ;;
        *) fail_config "$1 must be above 0, not '$2'" ;;
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
require_whole UPLOAD_ATTEMPTS "$UPLOAD_ATTEMPTS"
[ "$UPLOAD_ATTEMPTS" -ge 1 ] || fail_config "UPLOAD_ATTEMPTS must be at least 1"
require_positive UPLOAD_TIMEOUT "$UPLOAD_TIMEOUT"
require_positive STOP_UPLOAD_TIMEOUT "$STOP_UPLOAD_TIMEOUT"
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

# What to upload, decided now so that a problem shows in the log at once. RESULTS_DIR
# stays empty when nothing is to be uploaded; UPLOAD_FAILED is set when results that
# should have gone up did not (it makes the exit status 3).
RESULTS_DIR=
RESULTS_DEST=
UPLOAD_FAILED=
if [ -n "$RESULTS_S3_URI" ]; then
    case $RESULTS_S3_URI in
        s3://?*) ;;
        *) fail_config "RESULTS_S3_URI must start with s3://, not '$RESULTS_S3_URI'" ;;
    esac
    case $APP_NAME in
        '')
            log "APP_NAME is empty: the driver pod has no annotation multiomix-aws-emr/app-name, most likely because multiomix-aws-emr runs without DATA_STAGING=s3; the results will NOT be uploaded"
            UPLOAD_FAILED=1
            ;;
        . | .. | *[!A-Za-z0-9._-]*)
            log "APP_NAME '$APP_NAME' is not one safe folder name (letters, digits, '.', '_', '-'); the results will NOT be uploaded"
            UPLOAD_FAILED=1
            ;;
        *)
            RESULTS_DIR="$RESULTS_PATH/$APP_NAME"
            RESULTS_DEST="${RESULTS_S3_URI%/}/$APP_NAME/"
            ;;
    esac
fi

# A stop signal sets STOP_REQUESTED and ends the AWS CLI call under way, if any
# (CLI_PID); the code that waits or uploads looks at the flag when it wakes up.
STOP_REQUESTED=
CLI_PID=
on_stop() {
    STOP_REQUESTED=1
    if [ -n "$CLI_PID" ]; then
        kill "$CLI_PID" 2>/dev/null
    fi
}
trap on_stop TERM INT

# sleep in the background so that a stop signal is handled at once, not after the sleep.
pause() {
    sleep "$1" &
    wait $!
}

# One AWS CLI call bounded by $1 seconds, in the background so that a stop signal can
# end it; its exit status (timeout's 124 when it ran out of time).
run_cli() {
    limit=$1
    shift
    [ -z "$STOP_REQUESTED" ] || return 1
    # --kill-after: a CLI that ignores the TERM of the timeout is killed 5 s later.
    timeout -k 5 "$limit" "$AWS_CLI" "$@" &
    CLI_PID=$!
    # A signal between the start and the line above found no CLI_PID to end.
    [ -z "$STOP_REQUESTED" ] || kill "$CLI_PID" 2>/dev/null
    cli_status=0
    wait "$CLI_PID" || cli_status=$?
    if [ -n "$STOP_REQUESTED" ]; then
        # The signal cut the wait short: let the ended call go (its timeout forwards the
        # TERM and kills it 5 s later at most) before going on.
        wait "$CLI_PID" 2>/dev/null
    fi
    CLI_PID=
    return "$cli_status"
}

# One try of the upload, each call bounded by $1 seconds: everything but result.json,
# then result.json, so that S3 never holds a result.json beside missing files.
upload_once() {
    run_cli "$1" s3 cp --recursive --only-show-errors --no-progress \
        --exclude result.json "$RESULTS_DIR/" "$RESULTS_DEST" || return 1
    if [ -f "$RESULTS_DIR/result.json" ]; then
        run_cli "$1" s3 cp --only-show-errors --no-progress \
            "$RESULTS_DIR/result.json" "${RESULTS_DEST}result.json" || return 1
    else
        log "no result.json in $RESULTS_DIR: the other files went up, but the service will not take the folder as complete"
    fi
}

# Uploads the results with up to $1 tries, each call bounded by $2 seconds. Never
# fails the sidecar: it sets UPLOAD_FAILED and the call to the service follows anyway.
upload_results() {
    [ -n "$RESULTS_DIR" ] || return 0
    if [ ! -d "$RESULTS_DIR" ]; then
        log "no results folder $RESULTS_DIR (the job failed or wrote nothing): nothing to upload"
        return 0
    fi
    try=1
    while :; do
        log "uploading $RESULTS_DIR to $RESULTS_DEST (try $try/$1, at most ${2}s a call)"
        if upload_once "$2"; then
            log "uploaded the results of $APP_NAME to $RESULTS_DEST"
            return 0
        fi
        if [ -n "$STOP_REQUESTED" ]; then
            log "UPLOAD INTERRUPTED by a stop signal: the results of $APP_NAME are NOT all in $RESULTS_DEST; calling the service now"
            UPLOAD_FAILED=1
            return 0
        fi
        log "upload try $try/$1 of $RESULTS_DIR to $RESULTS_DEST failed (status $cli_status)"
        if [ "$try" -ge "$1" ]; then
            log "UPLOAD FAILED after $1 tries: the results of $APP_NAME are NOT in $RESULTS_DEST; calling the service anyway, which will keep trying to download them"
            UPLOAD_FAILED=1
            return 0
        fi
        try=$((try + 1))
        pause "$RETRY_DELAY"
    done
}

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
                if [ -n "$UPLOAD_FAILED" ]; then
                    exit 3
                fi
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

# Returns once the driver has ended, a wait has run out, or a stop signal came.
# Kubernetes stops the sidecar when the pod is deleted, which happens when the job ends
# or is cancelled: the sidecar then still uploads and calls before leaving.
wait_for_driver() {
    start=$(date +%s)
    deadline=$((start + MAX_WAIT))
    start_deadline=$((start + START_TIMEOUT))
    [ "$start_deadline" -le "$deadline" ] || start_deadline=$deadline

    log "job $JOB_ID: waiting for the driver to end (heartbeat file $HEARTBEAT_FILE)"
    while [ ! -e "$HEARTBEAT_FILE" ]; do
        [ -z "$STOP_REQUESTED" ] || return 0
        if [ "$(date +%s)" -ge "$start_deadline" ]; then
            log "no heartbeat after $((start_deadline - start))s (is emr-container-communicate mounted?): going on anyway"
            return 0
        fi
        pause "$CHECK_INTERVAL"
    done

    while :; do
        [ -z "$STOP_REQUESTED" ] || return 0
        now=$(date +%s)
        if ! beat=$(stat -c %Y "$HEARTBEAT_FILE" 2>/dev/null); then
            log "the heartbeat file is gone: the driver has ended"
            return 0
        fi
        if [ $((now - beat)) -gt "$HEARTBEAT_TIMEOUT" ]; then
            log "no heartbeat for $((now - beat))s: the driver has ended"
            return 0
        fi
        if [ "$now" -ge "$deadline" ]; then
            log "still running after MAX_WAIT=${MAX_WAIT}s: going on anyway"
            return 0
        fi
        pause "$CHECK_INTERVAL"
    done
}

wait_for_driver
if [ -n "$STOP_REQUESTED" ]; then
    # The pod is going away: one short try, so that the call still happens in time. A
    # second signal ends that try too.
    STOP_REQUESTED=
    if [ -n "$RESULTS_DIR" ]; then
        log "stopped by a signal while waiting: uploading the results (one try) and calling the service now"
    else
        log "stopped by a signal while waiting: calling the service now"
    fi
    upload_results 1 "$STOP_UPLOAD_TIMEOUT"
else
    upload_results "$UPLOAD_ATTEMPTS" "$UPLOAD_TIMEOUT"
fi
notify
