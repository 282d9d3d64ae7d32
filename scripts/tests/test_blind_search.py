"""Blind Search as Multiomix runs it (MULTIOMIX_JOBS.md, "Blind Search"); no Spark."""

import itertools
import os
import sys
import unittest

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "src"))

from feature_selection import blind_search  # noqa: E402
from feature_selection.models import Evaluation  # noqa: E402


class TableEvaluator:
    """Fitness from a table keyed by the subset's molecules; `default` for the others."""

    def __init__(self, table, default=0.5):
        self.table, self.default = table, default
        self.order = []

    def evaluate(self, masks):
        out = []
        for m in masks:
            key = tuple(int(i) for i in np.flatnonzero(m))
            self.order.append(key)
            out.append(Evaluation(self.table.get(key, self.default), len(key), 0.0, 0.0, 0.0))
        return out


class OrderTests(unittest.TestCase):
    def test_subsets_by_size_smallest_first_as_itertools_combinations(self):
        expected = [c for k in range(1, 5) for c in itertools.combinations(range(4), k)]
        got = [tuple(int(i) for i in np.flatnonzero(m)) for m in blind_search.subsets(4)]
        self.assertEqual(got, expected)
        self.assertEqual(got[:4], [(0,), (1,), (2,), (3,)])
        self.assertEqual(got[-1], (0, 1, 2, 3))

    def test_the_run_evaluates_in_that_order_across_batches(self):
        fake = TableEvaluator({})
        outcome = blind_search.run(fake, 5, batch=7)
        self.assertEqual(fake.order, [c for k in range(1, 6) for c in itertools.combinations(range(5), k)])
        self.assertEqual([len(s.masks) for s in outcome.steps], [7, 7, 7, 7, 3])


class TieTests(unittest.TestCase):
    def test_of_two_equally_fit_subsets_the_smaller_is_kept(self):
        # {0, 1} comes before {2} in binary counting; by size, {2} comes first and stays.
        fake = TableEvaluator({(0, 1): 0.9, (2,): 0.9})
        outcome = blind_search.run(fake, 3)
        self.assertEqual(list(np.flatnonzero(outcome.best_mask)), [2])
        self.assertEqual(outcome.best_fitness, 0.9)

    def test_of_two_equally_fit_subsets_of_one_size_the_first_combination_is_kept(self):
        fake = TableEvaluator({(1, 2): 0.9, (0, 2): 0.9})
        outcome = blind_search.run(fake, 3)
        self.assertEqual(list(np.flatnonzero(outcome.best_mask)), [0, 2])

    def test_a_strictly_fitter_larger_subset_replaces_the_best(self):
        fake = TableEvaluator({(2,): 0.9, (0, 1, 2): 0.91})
        outcome = blind_search.run(fake, 3)
        self.assertEqual(list(np.flatnonzero(outcome.best_mask)), [0, 1, 2])

    def test_over_the_limit_is_refused(self):
        with self.assertRaises(ValueError):
            blind_search.run(TableEvaluator({}), blind_search.MAX_MOLECULES + 1)


if __name__ == "__main__":
    unittest.main()
