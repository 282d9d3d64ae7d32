"""Create the EMR on EKS virtual cluster the service expects, in a moto server.

moto gives every virtual cluster a random id, while the service reads its cluster id
from EMR_VIRTUAL_CLUSTER_ID at start-up. Seeding moto's random generator right before
the creation makes the id the same on every run of the same moto version, so the id can
be written once in emulator.env.

Environment: MOTO_URL (default http://127.0.0.1:5000), EXPECTED_VIRTUAL_CLUSTER_ID,
SEED (default 8003), NAMESPACE (default multiomix), AWS_DEFAULT_REGION.
Exit status: 0 when the expected cluster exists, 1 otherwise.
"""

import os
import sys
import urllib.request

import boto3

MOTO_URL = os.environ.get("MOTO_URL", "http://127.0.0.1:5000").rstrip("/")
EXPECTED = os.environ.get("EXPECTED_VIRTUAL_CLUSTER_ID", "")
SEED = os.environ.get("SEED", "8003")
NAMESPACE = os.environ.get("NAMESPACE", "multiomix")
REGION = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")


def existing_cluster(client, cluster_id):
    if not cluster_id:
        return None
    try:
        cluster = client.describe_virtual_cluster(id=cluster_id)["virtualCluster"]
    except client.exceptions.ClientError:
        return None
    return cluster if cluster.get("state") == "RUNNING" else None


def main():
    client = boto3.client("emr-containers", endpoint_url=MOTO_URL, region_name=REGION)

    if existing_cluster(client, EXPECTED):
        print(f"virtual cluster {EXPECTED} already exists")
        return 0

    request = urllib.request.Request(f"{MOTO_URL}/moto-api/seed?a={SEED}", method="POST")
    urllib.request.urlopen(request, timeout=10).close()

    created = client.create_virtual_cluster(
        name="multiomix",
        containerProvider={
            "id": "multiomix-eks",
            "type": "EKS",
            "info": {"eksInfo": {"namespace": NAMESPACE}},
        },
    )
    cluster_id = created["id"]
    print(f"created virtual cluster {cluster_id} (namespace {NAMESPACE})")

    if EXPECTED and cluster_id != EXPECTED:
        print(
            f"the service expects EMR_VIRTUAL_CLUSTER_ID={EXPECTED}; this moto version "
            f"made {cluster_id}: put EMR_VIRTUAL_CLUSTER_ID={cluster_id} in "
            "dev/emulator/emulator.env",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
