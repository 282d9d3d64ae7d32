"""Command-line handling of the job; no Spark needed."""

import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from feature_selection.arguments import UsageError, parse  # noqa: E402


class ArgumentTests(unittest.TestCase):
    def test_known_arguments_are_read_and_unknown_pairs_are_kept_in_order(self):
        args = parse(
            ["--app-name", "exp-42-app", "--molecules-dataset", "exp-42-app/molecules.csv",
             "--n-stars", "15", "--cv-folds", "10", "--clinical-dataset", "c.csv"]
        )
        self.assertEqual(args.app_name, "exp-42-app")
        self.assertEqual(args.molecules_dataset, "exp-42-app/molecules.csv")
        self.assertEqual(args.clinical_dataset, "c.csv")
        self.assertEqual(args.clinical_column, "time")
        self.assertEqual(list(args.extra.items()), [("n-stars", "15"), ("cv-folds", "10")])

    def test_unknown_argument_with_a_negative_number_keeps_its_value(self):
        args = parse(["--app-name", "a", "--molecules-dataset", "m.csv", "--alpha", "-0.5"])
        self.assertEqual(args.extra, {"alpha": "-0.5"})

    def test_unknown_bare_flag_counts_as_true(self):
        args = parse(["--app-name", "a", "--verbose", "--molecules-dataset", "m.csv"])
        self.assertEqual(args.extra, {"verbose": "true"})

    def test_missing_app_name_is_a_usage_error(self):
        with self.assertRaisesRegex(UsageError, "--app-name"):
            parse(["--molecules-dataset", "m.csv"])

    def test_an_abbreviated_known_name_is_not_taken_for_the_full_one(self):
        args = parse(["--app-name", "a", "--molecules-dataset", "m.csv", "--clinical", "x"])
        self.assertIsNone(args.clinical_dataset)
        self.assertEqual(args.extra, {"clinical": "x"})

    def test_app_names_that_would_leave_the_results_folder_are_refused(self):
        for bad in ["../up", "a/b", ".hidden", ""]:
            with self.subTest(app_name=bad), self.assertRaises(UsageError):
                parse(["--app-name", bad, "--molecules-dataset", "m.csv"])

    def test_a_stray_value_without_a_name_is_refused(self):
        with self.assertRaisesRegex(UsageError, "stray"):
            parse(["--app-name", "a", "--molecules-dataset", "m.csv", "stray"])

    def test_top_must_be_positive(self):
        with self.assertRaises(UsageError):
            parse(["--app-name", "a", "--molecules-dataset", "m.csv", "--top", "0"])


if __name__ == "__main__":
    unittest.main()
