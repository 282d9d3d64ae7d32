#!/bin/sh
# Init container of the Spark driver pod: copies one job's datasets from S3 into the
# datasets volume before Spark starts. multiomix-aws-emr (with DATA_STAGING=s3) uploads
# a job's files to ${INPUT_S3_URI}<app-name>/ before it starts the job; this copies that
# folder, and nothing else, to $DATASETS_PATH/<app-name>/, so that an argument such as
# `BBHA_42/molecules.csv` resolves under DATASETS_PATH as it does on Multiomix's side.
#
# The app name reaches the pod as the driver pod's annotation multiomix-aws-emr/app-name,
# which the service sets on every job it starts with staging on; the pod template hands
# it to this container as APP_NAME through the downward API.
#
# Environment (defaults in brackets):
#   INPUT_S3_URI   s3://bucket/prefix/ under which each job's datasets are (required)
#   APP_NAME       the job's app name, one path segment (required; from the annotation)
#   DATASETS_PATH  folder to copy into [/var/data]
#   COPY_TIMEOUT   seconds the copy may take before it is given up [600]
#   AWS_CLI        the AWS CLI program [aws]
# Credentials come from the pod (the job execution role through IRSA), like Spark's own.
# The CLI retries failed requests itself; COPY_TIMEOUT bounds the whole copy.
# Exit status: 0 when the job's datasets were copied; 1 when the copy failed, timed out
# or found nothing; 2 on a configuration error. The pod then fails before Spark starts,
# and EMR reports the job as FAILED.

set -eu
# Character ranges below mean ASCII letters and digits, whatever the image's locale.
LC_ALL=C
export LC_ALL

log() {
    printf 'fetch-inputs: %s\n' "$*" >&2
}

fail_config() {
    log "$*"
    exit 2
}

INPUT_S3_URI=${INPUT_S3_URI:-}
APP_NAME=${APP_NAME:-}
DATASETS_PATH=${DATASETS_PATH:-/var/data}
COPY_TIMEOUT=${COPY_TIMEOUT:-600}
AWS_CLI=${AWS_CLI:-aws}

case $INPUT_S3_URI in
    s3://?*) ;;
    '') fail_config "INPUT_S3_URI must name the s3:// prefix of the datasets" ;;
    *) fail_config "INPUT_S3_URI must start with s3://, not '$INPUT_S3_URI'" ;;
esac
case $APP_NAME in
    '')
        fail_config "APP_NAME is empty: the driver pod has no annotation multiomix-aws-emr/app-name, most likely because multiomix-aws-emr runs without DATA_STAGING=s3"
        ;;
    . | .. | *[!A-Za-z0-9._-]*)
        fail_config "APP_NAME '$APP_NAME' is not one safe folder name (letters, digits, '.', '_', '-')"
        ;;
esac
case $COPY_TIMEOUT in
    '' | *[!0-9]* | 0) fail_config "COPY_TIMEOUT must be a whole number of seconds above 0, not '$COPY_TIMEOUT'" ;;
esac

# Both ends as folders: the trailing `/` keeps BBHA_42 from also matching BBHA_420.
source="${INPUT_S3_URI%/}/$APP_NAME/"
target="$DATASETS_PATH/$APP_NAME"

mkdir -p "$target"
log "copying $source to $target (at most ${COPY_TIMEOUT}s)"
status=0
# --kill-after: a CLI that ignores the TERM of the timeout is killed 5 s later.
timeout -k 5 "$COPY_TIMEOUT" \
    "$AWS_CLI" s3 sync --only-show-errors --no-progress "$source" "$target" || status=$?
case $status in
    0) ;;
    124 | 137)
        log "the copy of $source did not finish in ${COPY_TIMEOUT}s: giving up"
        exit 1
        ;;
    *)
        log "the copy of $source failed (the AWS CLI exited $status; its error is above)"
        exit 1
        ;;
esac

files=$(find "$target" -type f | wc -l)
if [ "$files" -eq 0 ]; then
    log "nothing under $source: multiomix-aws-emr uploads a job's datasets there before it starts the job, so they were deleted since or the prefix is not the service's S3_DATASETS_PREFIX"
    exit 1
fi
log "done: $files file(s) in $target"
