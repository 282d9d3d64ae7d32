#!/bin/sh
# Init container of the Spark pods: copies the job's inputs from S3 into the datasets
# volume before Spark starts, keeping the layout below the prefix, so that an argument
# such as `exp-42-app/molecules.csv` resolves under DATASETS_PATH.
#
# Environment:
#   INPUT_S3_URI   s3://bucket/prefix/ to copy from (required)
#   DATASETS_PATH  folder to copy into [/var/data]
#   AWS_CLI        the AWS CLI program [aws]
# Credentials come from the pod (the job execution role through IRSA), like Spark's own.
# Exit status: 0 when everything was copied, non-zero otherwise (the pod then fails
# before Spark starts, and EMR reports the job as FAILED).

set -eu

: "${INPUT_S3_URI:?INPUT_S3_URI must name the s3:// prefix of the inputs}"
DATASETS_PATH=${DATASETS_PATH:-/var/data}
AWS_CLI=${AWS_CLI:-aws}

case $INPUT_S3_URI in
    s3://?*) ;;
    *)
        echo "fetch-inputs: INPUT_S3_URI must start with s3://, not '$INPUT_S3_URI'" >&2
        exit 2
        ;;
esac

mkdir -p "$DATASETS_PATH"
echo "fetch-inputs: copying $INPUT_S3_URI to $DATASETS_PATH" >&2
"$AWS_CLI" s3 sync --only-show-errors --no-progress "$INPUT_S3_URI" "$DATASETS_PATH"
echo "fetch-inputs: done" >&2
