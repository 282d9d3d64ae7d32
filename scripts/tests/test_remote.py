"""`s3://` DATASETS_PATH and RESULTS_PATH against moto's S3 server (a real HTTP peer,
started in this process on a loopback port), through boto3 as the job uses it."""

import json
import logging
import os
import socket
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "src"))

from feature_selection import remote  # noqa: E402
from feature_selection.datasets import DatasetError  # noqa: E402

try:
    import boto3
    from moto.server import ThreadedMotoServer
except ImportError:  # pragma: no cover - the test environment has both
    boto3 = None

BUCKET = "multiomix-bucket"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@unittest.skipIf(boto3 is None, "boto3 and moto are in the test environment (.ci/requirements.txt)")
class S3LocationsTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # The server's request log is noise here.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        cls.port = free_port()
        cls.server = ThreadedMotoServer(ip_address="127.0.0.1", port=cls.port, verbose=False)
        cls.server.start()
        cls.saved = {k: os.environ.get(k) for k in (
            "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
            "AWS_DEFAULT_REGION", "DATASETS_PATH", "RESULTS_PATH")}
        os.environ.update({
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{cls.port}",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        })

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        for key, value in cls.saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    def setUp(self):
        self.s3 = boto3.client("s3")
        self.s3.create_bucket(Bucket=BUCKET)
        self.addCleanup(self.empty_bucket)
        self.scratch = remote.workdir()
        self.addCleanup(remote.cleanup, self.scratch)

    def empty_bucket(self):
        for o in self.s3.list_objects_v2(Bucket=BUCKET).get("Contents", []):
            self.s3.delete_object(Bucket=BUCKET, Key=o["Key"])
        self.s3.delete_bucket(Bucket=BUCKET)

    def keys(self):
        return sorted(o["Key"] for o in self.s3.list_objects_v2(Bucket=BUCKET).get("Contents", []))

    def test_local_paths_are_left_alone(self):
        local = tempfile.mkdtemp(dir=self.scratch)
        os.environ["DATASETS_PATH"] = local
        os.environ["RESULTS_PATH"] = local
        self.assertIsNone(remote.fetch_datasets(["BBHA_42/molecules.csv"], self.scratch))
        self.assertEqual(os.environ["DATASETS_PATH"], local)
        output = remote.Results(self.scratch)
        self.assertEqual(os.environ["RESULTS_PATH"], local)
        self.assertIsNone(output.publish("BBHA_42"))
        self.assertEqual(self.keys(), [])

    def test_the_named_datasets_are_copied_to_local_disk(self):
        self.s3.put_object(Bucket=BUCKET, Key="datasets/BBHA_42/molecules.csv", Body=b"m\n")
        self.s3.put_object(Bucket=BUCKET, Key="datasets/BBHA_42/clinical.csv", Body=b"c\n")
        self.s3.put_object(Bucket=BUCKET, Key="datasets/BBHA_7/molecules.csv", Body=b"other\n")
        os.environ["DATASETS_PATH"] = f"s3://{BUCKET}/datasets"
        root = remote.fetch_datasets(["BBHA_42/molecules.csv", "BBHA_42/clinical.csv"], self.scratch)
        self.assertEqual(os.environ["DATASETS_PATH"], root)
        with open(os.path.join(root, "BBHA_42", "molecules.csv"), "rb") as f:
            self.assertEqual(f.read(), b"m\n")
        copied = sorted(
            os.path.relpath(os.path.join(base, n), root)
            for base, _, names in os.walk(root) for n in names
        )
        self.assertEqual(copied, [os.path.join("BBHA_42", "clinical.csv"), os.path.join("BBHA_42", "molecules.csv")])

    def test_a_missing_dataset_or_a_climbing_path_is_a_dataset_error(self):
        os.environ["DATASETS_PATH"] = f"s3://{BUCKET}/datasets/"
        with self.assertRaises(DatasetError) as caught:
            remote.fetch_datasets(["BBHA_42/absent.csv"], self.scratch)
        self.assertIn("BBHA_42/absent.csv", str(caught.exception))
        with self.assertRaises(DatasetError):
            remote.fetch_datasets(["../results/x.csv"], self.scratch)

    def test_the_result_folder_goes_up_with_result_json_last(self):
        os.environ["RESULTS_PATH"] = f"s3://{BUCKET}/results/"
        output = remote.Results(self.scratch)
        local = os.environ["RESULTS_PATH"]
        self.assertFalse(local.startswith("s3://"), "the job writes to local disk")
        folder = os.path.join(local, "BBHA_42")
        os.makedirs(folder)
        for name, body in (("times.json", {"t": 1}), ("result.json", {"features": "A|B"}),
                           ("model.pkl", "bytes"), ("a.json", {})):
            with open(os.path.join(folder, name), "w") as f:
                json.dump(body, f)
        order = []
        client = boto3.client("s3")
        client.meta.events.register(
            "provide-client-params.s3.PutObject", lambda params, **_: order.append(params["Key"]))
        client.meta.events.register(
            "provide-client-params.s3.CreateMultipartUpload", lambda params, **_: order.append(params["Key"]))
        url = output.publish("BBHA_42", client=client)
        self.assertEqual(url, f"s3://{BUCKET}/results/BBHA_42/")
        self.assertEqual(order[-1], "results/BBHA_42/result.json")
        self.assertEqual(sorted(order), self.keys())
        self.assertEqual(len(order), 4)
        body = self.s3.get_object(Bucket=BUCKET, Key="results/BBHA_42/result.json")["Body"].read()
        self.assertEqual(json.loads(body), {"features": "A|B"})

    def test_a_failed_upload_names_the_file(self):
        os.environ["RESULTS_PATH"] = "s3://no-such-bucket/results/"
        output = remote.Results(self.scratch)
        folder = os.path.join(os.environ["RESULTS_PATH"], "BBHA_42")
        os.makedirs(folder)
        with open(os.path.join(folder, "result.json"), "w") as f:
            f.write("{}")
        with self.assertRaises(remote.UploadError) as caught:
            output.publish("BBHA_42")
        self.assertIn("result.json", str(caught.exception))
        self.assertIn("no-such-bucket", str(caught.exception))


if __name__ == "__main__":
    unittest.main()
