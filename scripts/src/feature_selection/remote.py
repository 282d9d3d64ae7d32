"""`s3://` for DATASETS_PATH and RESULTS_PATH, for clusters where no pod or node can copy
the files around the job (EMR Serverless).

- DATASETS_PATH=s3://bucket/datasets/: the two dataset files the arguments name are
  copied to local disk before they are read, and DATASETS_PATH points there.
- RESULTS_PATH=s3://bucket/results/: the job writes its results to local disk as always,
  then uploads its result folder to `<prefix><app-name>/`, `result.json` last, so that a
  result folder with a `result.json` in S3 is always complete.

Anything else in DATASETS_PATH and RESULTS_PATH is a local folder, used as it is. boto3
is imported only when an `s3://` location is used. Credentials, region and
AWS_ENDPOINT_URL come from the standard AWS environment.
"""

import os
import posixpath
import shutil
import tempfile
from typing import Optional, Tuple

from .datasets import DatasetError
from .results import RESULT_FILE


class UploadError(Exception):
    """The results could not be uploaded; the message names the file and the cause."""


def s3_location(value: Optional[str]) -> Optional[Tuple[str, str]]:
    """`(bucket, prefix)` of an `s3://bucket/prefix/` value (the prefix empty or ending
    with `/`), or None for anything that is not an s3:// URL."""
    if not value or not value.startswith("s3://"):
        return None
    bucket, _, prefix = value[len("s3://"):].partition("/")
    if not bucket:
        raise ValueError(f"{value}: names no bucket")
    prefix = prefix.lstrip("/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return bucket, prefix


def _client():
    import boto3

    return boto3.client("s3")


def _key(prefix: str, relative: str) -> str:
    """The key of a relative path under a prefix; a path that climbs out is refused."""
    normal = posixpath.normpath(relative.replace(os.sep, "/"))
    if normal.startswith("/") or normal == ".." or normal.startswith("../"):
        raise DatasetError(f"{relative}: not a path inside the datasets folder")
    return prefix + normal


def fetch_datasets(relatives, workdir: str, client=None) -> Optional[str]:
    """When DATASETS_PATH is s3://, copies the named files under `workdir` (same relative
    paths), points DATASETS_PATH there and returns it; otherwise does nothing and returns
    None. A file that cannot be fetched is a DatasetError naming it."""
    location = s3_location(os.environ.get("DATASETS_PATH"))
    if location is None:
        return None
    bucket, prefix = location
    client = client or _client()
    local_root = os.path.join(workdir, "datasets")
    for relative in relatives:
        key = _key(prefix, relative)
        target = os.path.join(local_root, *key[len(prefix):].split("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        try:
            client.download_file(bucket, key, target)
        except Exception as e:  # botocore's errors have no common base worth naming
            raise DatasetError(f"{relative}: cannot be fetched from s3://{bucket}/{key} ({e})") from None
    os.environ["DATASETS_PATH"] = local_root
    return local_root


class Results:
    """Where the job writes its results: RESULTS_PATH itself, or, when that is s3://, a
    local folder whose result folder is uploaded by `publish`."""

    def __init__(self, workdir: str):
        self.location = s3_location(os.environ.get("RESULTS_PATH"))
        if self.location is not None:
            self.local_root = os.path.join(workdir, "results")
            os.makedirs(self.local_root, exist_ok=True)
            os.environ["RESULTS_PATH"] = self.local_root

    def publish(self, app_name: str, client=None) -> Optional[str]:
        """Uploads `<local>/<app_name>/` to `<prefix><app_name>/`, result.json last.
        Returns the s3:// URL of the folder, or None when the results are local."""
        if self.location is None:
            return None
        bucket, prefix = self.location
        client = client or _client()
        folder = os.path.join(self.local_root, app_name)
        names = []
        for base, _, files in os.walk(folder):
            for name in files:
                names.append(os.path.relpath(os.path.join(base, name), folder))
        # result.json says the folder is complete: it goes up after everything else.
        names.sort(key=lambda n: (n == RESULT_FILE, n))
        for name in names:
            key = f"{prefix}{app_name}/{name.replace(os.sep, '/')}"
            try:
                client.upload_file(os.path.join(folder, name), bucket, key)
            except Exception as e:
                raise UploadError(f"{name}: cannot be uploaded to s3://{bucket}/{key} ({e})") from None
        return f"s3://{bucket}/{prefix}{app_name}/"


def workdir() -> str:
    """A scratch folder for staged files, removed with `cleanup`."""
    return tempfile.mkdtemp(prefix="feature-selection-")


def cleanup(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)
