"""Reading and refusing datasets; no Spark needed."""

import os
import shutil
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "src"))

from feature_selection import datasets  # noqa: E402
from feature_selection.datasets import DatasetError  # noqa: E402

MOLECULES = "\tS1\tS2\tS3\tS4\nBRCA1_1\t1.0\t2.0\t3.0\t4.0\nhsa-mir-21_2\t0.5\t0.1\t0.2\t0.3\n"
CLINICAL = "\tOS_STATUS\tOS_MONTHS\nS1\t1\t10.5\nS2\t0\t20\nS3\t1\t3\nS4\t0\t40\n"


class DatasetTests(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="fs-datasets-")
        self.addCleanup(shutil.rmtree, self.root, ignore_errors=True)
        os.environ["DATASETS_PATH"] = self.root
        os.makedirs(os.path.join(self.root, "BBHA_1"))

    def write(self, molecules=MOLECULES, clinical=CLINICAL):
        for name, text in (("molecules.csv", molecules), ("clinical.csv", clinical)):
            with open(os.path.join(self.root, "BBHA_1", name), "w") as f:
                f.write(text)

    def read(self, **kwargs):
        return datasets.read("BBHA_1/molecules.csv", "BBHA_1/clinical.csv", **kwargs)

    def assertRefused(self, *words, hidden=(), **kwargs):
        """Refused with a message that has every word in `words` and none of `hidden`:
        the message reaches the job's stateDetails, so it says where in the file the
        problem is, never what the file holds."""
        with self.assertRaises(DatasetError) as caught:
            self.read(**kwargs)
        for word in words:
            self.assertIn(word, str(caught.exception))
        for word in hidden:
            self.assertNotIn(word, str(caught.exception))

    def test_multiomix_format_is_read_event_first_then_time(self):
        self.write()
        d = self.read()
        self.assertEqual(d.molecules, ["BRCA1_1", "hsa-mir-21_2"])
        self.assertEqual(d.samples, ["S1", "S2", "S3", "S4"])
        self.assertEqual(d.X.shape, (4, 2))
        self.assertEqual(d.X[2, 0], 3.0)
        self.assertEqual(list(d.event), [True, False, True, False])
        self.assertEqual(list(d.time), [10.5, 20.0, 3.0, 40.0])
        self.assertEqual(d.y["time"][3], 40.0)

    def test_molecules_come_sorted_by_identifier_as_np_intersect1d_gives_them(self):
        # Multiomix writes one omic and one chunk at a time: the file's row order is not
        # the order Multiomix predicts in.
        import numpy as np

        rows = {"hsa-mir-21_2": 1.0, "cg0001_4": 2.0, "BRCA1_1": 3.0, "CNA_X_3": 4.0, "ATM_1": 5.0}
        text = "\tS1\tS2\tS3\tS4\n" + "".join(f"{k}\t{v}\t{v}\t{v}\t{v}\n" for k, v in rows.items())
        self.write(molecules=text)
        d = self.read()
        self.assertEqual(d.molecules, list(np.intersect1d(list(rows), list(rows))))
        self.assertNotEqual(d.molecules, list(rows))
        self.assertEqual(list(d.X[0]), [rows[m] for m in d.molecules])

    def test_only_shared_samples_are_kept_in_molecules_order(self):
        self.write(clinical="\te\tt\nS4\t1\t5\nS2\t0\t6\nS9\t1\t7\nS1\t1\t8\n")
        d = self.read()
        self.assertEqual(d.samples, ["S1", "S2", "S4"])
        self.assertEqual(list(d.time), [8.0, 6.0, 5.0])

    def test_comma_separated_files_are_read_too(self):
        self.write(MOLECULES.replace("\t", ","), CLINICAL.replace("\t", ","))
        self.assertEqual(self.read().X.shape, (4, 2))

    def test_missing_file_is_named(self):
        self.assertRefused("BBHA_1/molecules.csv", "not found")

    def test_empty_file(self):
        self.write(molecules="")
        self.assertRefused("BBHA_1/molecules.csv", "empty")

    def test_text_in_expression_values_gives_the_cells_place_not_its_content(self):
        self.write(molecules=MOLECULES.replace("0.2", "high"))
        self.assertRefused(
            "BBHA_1/molecules.csv", "line 3", "field 4", hidden=("hsa-mir-21_2", "S3", "high")
        )

    def test_nan_values(self):
        self.write(molecules=MOLECULES.replace("0.2", "NaN"))
        self.assertRefused("BBHA_1/molecules.csv", "NaN")

    def test_duplicated_molecule(self):
        self.write(molecules=MOLECULES + "BRCA1_1\t1\t1\t1\t1\n")
        self.assertRefused("BBHA_1/molecules.csv", "more than once", "line 4", hidden=("BRCA1",))

    def test_clinical_needs_two_columns(self):
        self.write(clinical="\tOS_STATUS\tOS_MONTHS\tAGE\nS1\t1\t2\t3\n")
        self.assertRefused("BBHA_1/clinical.csv", "two columns", "has 3", hidden=("AGE", "OS_"))

    def test_event_must_be_zero_or_one_time_first_is_a_mistake(self):
        self.write(clinical="\tOS_MONTHS\tOS_STATUS\nS1\t10.5\t1\nS2\t20\t0\n")
        self.assertRefused(
            "BBHA_1/clinical.csv", "event", "line 2", hidden=("OS_MONTHS", "S1", "10.5")
        )

    def test_negative_time(self):
        self.write(clinical=CLINICAL.replace("\t20\n", "\t-2\n"))
        self.assertRefused("BBHA_1/clinical.csv", "time", "line 3", hidden=("S2", "-2"))

    def test_a_file_that_is_not_text_is_refused_without_its_bytes(self):
        self.write()
        with open(os.path.join(self.root, "BBHA_1", "molecules.csv"), "wb") as f:
            f.write(b"\tS1\nsecret\xff\xfe\t1\n")
        self.assertRefused("BBHA_1/molecules.csv", "UTF-8", hidden=("0xff", "secret"))

    def test_a_link_out_of_the_datasets_folder_is_refused(self):
        self.write()
        outside = tempfile.mkdtemp(prefix="fs-outside-")
        self.addCleanup(shutil.rmtree, outside, ignore_errors=True)
        with open(os.path.join(outside, "secret.csv"), "w") as f:
            f.write(CLINICAL)
        os.symlink(os.path.join(outside, "secret.csv"), os.path.join(self.root, "BBHA_1", "c.csv"))
        for path in ("BBHA_1/c.csv", os.path.join(outside, "secret.csv"), "../" + os.path.basename(outside) + "/secret.csv"):
            with self.assertRaises(DatasetError, msg=path) as caught:
                datasets.read("BBHA_1/molecules.csv", path)
            self.assertIn("not a path inside the datasets folder", str(caught.exception))

    def test_zero_time_is_refused_only_when_asked(self):
        self.write(clinical=CLINICAL.replace("\t20\n", "\t0\n"))
        self.assertEqual(len(self.read().samples), 4)
        self.assertRefused("BBHA_1/clinical.csv", "greater than 0", positive_times=True)

    def test_too_few_shared_samples(self):
        self.write(clinical="\te\tt\nS1\t1\t5\nX2\t0\t6\n")
        self.assertRefused("BBHA_1/molecules.csv", "only 1", "at least 2")

    def test_too_few_events_for_the_folds(self):
        self.write()
        self.assertRefused("BBHA_1/clinical.csv", "2 events", "at least 3", min_events=3)


if __name__ == "__main__":
    unittest.main()
