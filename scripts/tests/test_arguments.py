"""Command-line handling of the jobs; no Spark needed."""

import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from feature_selection.arguments import (  # noqa: E402
    CLUSTERING_ALGORITHMS, SCORING_METHODS, UsageError, known_names, parameters_string, parse,
)

BASE = ["--app-name", "BBHA_42", "--molecules-dataset", "BBHA_42/molecules.csv",
        "--clinical-dataset", "BBHA_42/clinical.csv"]


def with_(*pairs):
    return parse(BASE + list(pairs))


class MultiomixRequestTests(unittest.TestCase):
    def test_multiomix_svm_request_in_its_order_and_value_forms(self):
        # What the service makes of Multiomix's BBHA svm body (numbers rendered as text).
        args = parse(BASE + [
            "--model", "svm", "--n-stars", "15", "--bbha-iterations", "10", "--cv-folds", "3",
            "--debug", "true", "--svm-kernel", "rbf", "--svm-optimizer", "avltree",
            "--svm-max-iterations", "1000", "--svm-is-regression", "true", "--random-state", "7",
        ])
        self.assertEqual(
            (args.app_name, args.molecules_dataset, args.clinical_dataset),
            ("BBHA_42", "BBHA_42/molecules.csv", "BBHA_42/clinical.csv"),
        )
        self.assertEqual((args.model, args.n_stars, args.bbha_iterations, args.cv_folds),
                         ("svm", 15, 10, 3))
        self.assertTrue(args.debug)
        self.assertEqual((args.svm_kernel, args.svm_optimizer, args.svm_max_iterations),
                         ("rbf", "avltree", 1000))
        self.assertTrue(args.svm_is_regression)
        self.assertEqual(args.random_state, 7)

    def test_rf_and_clustering_arguments(self):
        self.assertEqual(with_("--model", "rf", "--rf-n-estimators", "20").rf_n_estimators, 20)
        for algorithm in CLUSTERING_ALGORITHMS:
            for scoring in SCORING_METHODS:
                with self.subTest(algorithm=algorithm, scoring=scoring):
                    a = with_("--model", "clustering", "--clustering-algorithm", algorithm,
                              "--number-of-clusters", "3", "--clustering-scoring-method", scoring)
                    self.assertEqual(
                        (a.clustering_algorithm, a.number_of_clusters, a.clustering_scoring_method),
                        (algorithm, 3, scoring),
                    )

    def test_every_known_name_is_accepted_in_equals_form(self):
        values = {"model": "rf", "svm-kernel": "poly", "svm-optimizer": "rbtree",
                  "svm-is-regression": "false", "debug": "false", "bbha-version": "2",
                  "coeff-1": "2.2", "coeff-2": "0.3", "binary-threshold": "0.5",
                  "clustering-algorithm": "ward", "clustering-scoring-method": "concordance_index"}
        for name in known_names():
            if name in ("app-name", "molecules-dataset", "clinical-dataset"):
                continue
            with self.subTest(name=name):
                args = parse(BASE + [f"--{name}={values.get(name, '5')}"])
                self.assertIsNotNone(args)

    def test_defaults_when_absent(self):
        a = parse(BASE)
        self.assertEqual((a.model, a.n_stars, a.bbha_iterations, a.cv_folds), ("svm", 15, 10, 10))
        self.assertFalse(a.debug)
        self.assertFalse(a.svm_is_regression)
        self.assertIsNone(a.random_state)
        self.assertEqual((a.bbha_version, a.coeff_1, a.coeff_2, a.binary_threshold),
                         (1, 2.35, 0.2, 0.6))

    def test_integers_sent_as_json_numbers_may_look_like_floats(self):
        self.assertEqual(with_("--n-stars", "15.0").n_stars, 15)


class BbhaVersionTests(unittest.TestCase):
    """The improved BBHA's arguments: this service's additions to Multiomix's request."""

    def test_versions_and_their_coefficients(self):
        self.assertEqual(with_("--bbha-version", "1").bbha_version, 1)
        a = with_("--bbha-version", "2", "--coeff-1", "2.2", "--coeff-2", "0.1")
        self.assertEqual((a.bbha_version, a.coeff_1, a.coeff_2), (2, 2.2, 0.1))
        # JSON numbers as the service renders them
        a = with_("--bbha-version", "2.0", "--coeff-1", "2.35", "--coeff-2", "0.30")
        self.assertEqual((a.bbha_version, a.coeff_1, a.coeff_2), (2, 2.35, 0.3))
        for c2 in ("0.1", "0.2", "0.3"):
            self.assertEqual(with_("--coeff-2", c2).coeff_2, float(c2))

    def test_binary_threshold_a_number_between_0_and_1_or_random(self):
        self.assertEqual(with_("--binary-threshold", "0.45").binary_threshold, 0.45)
        self.assertEqual(with_("--binary-threshold", "0.999").binary_threshold, 0.999)
        self.assertIsNone(with_("--binary-threshold", "random").binary_threshold)

    def test_other_values_are_refused_naming_the_argument_and_the_choices(self):
        cases = [
            ("--bbha-version", "3", "1"), ("--bbha-version", "0", "2"),
            ("--bbha-version", "improved", "2"), ("--coeff-1", "2.3", "2.35"),
            ("--coeff-1", "two", "2.2"), ("--coeff-2", "0.25", "0.3"), ("--coeff-2", "nan", "0.1"),
            ("--binary-threshold", "0", "random"), ("--binary-threshold", "1", "random"),
            ("--binary-threshold", "1.5", "random"), ("--binary-threshold", "-0.2", "random"),
            ("--binary-threshold", "nan", "random"), ("--binary-threshold", "Random", "random"),
        ]
        for name, value, word in cases:
            with self.subTest(name=name, value=value):
                with self.assertRaises(UsageError) as caught:
                    with_(name, value)
                message = str(caught.exception)
                self.assertIn(name, message)
                self.assertIn(repr(value), message)
                self.assertIn(word, message)


class RefusalTests(unittest.TestCase):
    def assertRefused(self, argv, *words):
        with self.assertRaises(UsageError) as caught:
            parse(argv)
        for word in words:
            self.assertIn(word, str(caught.exception))

    def test_unknown_argument_is_named(self):
        self.assertRefused(BASE + ["--n-star", "15"], "--n-star")

    def test_each_required_argument_is_named_when_missing(self):
        for i in (0, 2, 4):
            argv = BASE[:i] + BASE[i + 2:]
            with self.subTest(missing=BASE[i]):
                self.assertRefused(argv, BASE[i])

    def test_invalid_values_are_named(self):
        cases = [
            ("--model", "cox"), ("--n-stars", "many"), ("--n-stars", "1"),
            ("--bbha-iterations", "0"), ("--cv-folds", "1"), ("--cv-folds", "3.5"),
            ("--debug", "yes"), ("--svm-kernel", "sigmoid"), ("--svm-optimizer", "simple"),
            ("--svm-max-iterations", "-1"), ("--svm-is-regression", "maybe"),
            ("--rf-n-estimators", "0"), ("--clustering-algorithm", "k-means"),
            ("--clustering-algorithm", "dbscan"), ("--number-of-clusters", "1"),
            ("--clustering-scoring-method", "aic"), ("--random-state", "-3"),
            ("--random-state", "seed"),
        ]
        for name, value in cases:
            with self.subTest(name=name, value=value):
                self.assertRefused(BASE + [name, value], name)

    def test_a_name_given_twice_is_refused(self):
        self.assertRefused(BASE + ["--model", "svm", "--model", "rf"], "--model", "twice")

    def test_a_name_without_value_is_refused(self):
        self.assertRefused(BASE + ["--model"], "--model")

    def test_a_stray_value_without_a_name_is_refused(self):
        self.assertRefused(BASE + ["stray"], "stray")

    def test_app_names_that_would_leave_the_results_folder_are_refused(self):
        for bad in ["../up", "a/b", ".hidden", ""]:
            with self.subTest(app_name=bad):
                self.assertRefused(["--app-name", bad] + BASE[2:], "--app-name")


class ParametersStringTests(unittest.TestCase):
    def test_svm_positions_multiomix_reads(self):
        p = parameters_string(with_("--model", "svm", "--svm-is-regression", "true",
                                    "--svm-max-iterations", "500", "--svm-kernel", "poly")).split("_")
        self.assertEqual((p[0], p[1], p[4], p[6]), ("regression", "500", "avltree", "poly"))
        self.assertEqual(parameters_string(with_("--model", "svm")).split("_")[0], "ranking")

    def test_rf(self):
        self.assertEqual(parameters_string(with_("--model", "rf", "--rf-n-estimators", "30")), "30_trees")

    def test_clustering_underscores_become_dashes(self):
        p = parameters_string(with_(
            "--model", "clustering", "--clustering-algorithm", "bk_means",
            "--number-of-clusters", "4", "--clustering-scoring-method", "log_likelihood"))
        self.assertEqual(p, "4_clusters_bk-means_algorithm_log-likelihood_scoring_method")
        parts = p.split("_")
        self.assertEqual((parts[0], parts[2], parts[4]), ("4", "bk-means", "log-likelihood"))


if __name__ == "__main__":
    unittest.main()
