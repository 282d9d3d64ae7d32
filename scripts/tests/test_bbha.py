"""BBHA's steps, its reproducibility, and that it finds a planted signal; no Spark."""

import os
import sys
import unittest

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "src"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "examples", "datasets"))

from feature_selection import bbha  # noqa: E402
from feature_selection.datasets import Data  # noqa: E402
from feature_selection.evaluators import SequentialEvaluator  # noqa: E402
from feature_selection.models import Evaluation, ModelSpec, evaluate  # noqa: E402

import generate  # noqa: E402


def planted(n_molecules=40, n_samples=120, n_signal=3, seed=11):
    ids, samples, values, event, time, signal = generate.generate(n_molecules, n_samples, n_signal, seed)
    return Data(ids, samples, values.T.copy(), event.astype(bool), time), signal


class FakeEvaluator:
    """Fitness = number of molecules among `good` minus a small cost per molecule."""

    def __init__(self, good):
        self.good = np.asarray(good, dtype=bool)
        self.batches = []

    def evaluate(self, masks):
        self.batches.append(len(masks))
        return [
            Evaluation(float((m & self.good).sum() - 0.1 * m.sum()), int(m.sum()), 0.0, 0.0, 0.0)
            for m in masks
        ]


class StepTests(unittest.TestCase):
    def test_move_stays_where_the_star_agrees_with_the_black_hole(self):
        rng = np.random.default_rng(0)
        star = np.array([1, 1, 0, 0], dtype=bool)
        hole = np.array([1, 0, 1, 0], dtype=bool)
        for _ in range(50):
            x = bbha.move(star, hole, rng)
            self.assertEqual((x[0], x[3]), (1.0, 0.0))
            self.assertTrue(0.0 <= x[1] <= 1.0 and 0.0 <= x[2] <= 1.0)

    def test_move_goes_toward_the_black_hole_by_a_uniform_fraction(self):
        rng = np.random.default_rng(1)
        moves = np.array([bbha.move(np.array([False]), np.array([True]), rng)[0] for _ in range(2000)])
        self.assertAlmostEqual(moves.mean(), 0.5, delta=0.03)
        self.assertGreater(moves.max(), 0.95)
        self.assertLess(moves.min(), 0.05)

    def test_binarise_with_a_fixed_threshold_is_tanh_against_it(self):
        rng = np.random.default_rng(2)
        x = np.array([0.0, 0.2, 0.6, 1.0, -1.0])
        # |tanh|: 0, 0.197, 0.537, 0.762, 0.762
        self.assertEqual(list(bbha.binarise(x, rng, threshold=0.5)), [False, False, True, True, True])

    def test_binarise_with_random_thresholds_keeps_a_bit_with_probability_tanh(self):
        rng = np.random.default_rng(3)
        ones = np.mean([bbha.binarise(np.ones(20), rng).mean() for _ in range(500)])
        self.assertAlmostEqual(ones, np.tanh(1.0), delta=0.03)

    def test_binarise_never_returns_an_empty_mask(self):
        rng = np.random.default_rng(4)
        for _ in range(100):
            self.assertEqual(bbha.binarise(np.zeros(6), rng).sum(), 1)

    def test_event_horizon_is_the_black_holes_share_of_the_total_fitness(self):
        f = np.array([0.6, 0.8, 0.6])
        self.assertAlmostEqual(bbha.event_horizon(f, 1), 0.8 / 2.0)
        # negative fitness (log-likelihood) uses magnitudes; unevaluated stars do not count
        self.assertAlmostEqual(bbha.event_horizon(np.array([-10.0, -5.0, -np.inf]), 1), 5.0 / 15.0)

    def test_stars_within_the_horizon_are_swallowed_never_the_black_hole(self):
        f = np.array([0.70, 0.80, 0.79, 0.50, -np.inf])
        self.assertEqual(bbha.swallowed(f, 1, radius=0.05), [2, 4])
        self.assertEqual(bbha.swallowed(f, 1, radius=0.5), [0, 2, 3, 4])


class RunTests(unittest.TestCase):
    def test_each_iteration_is_one_batch_and_a_fitter_star_becomes_the_black_hole(self):
        good = np.zeros(30, dtype=bool)
        good[[3, 7, 21]] = True
        fake = FakeEvaluator(good)
        outcome = bbha.run(fake, 30, n_stars=8, iterations=40, seed=5)
        self.assertEqual(fake.batches, [8] + [7] * 40)
        best_evaluated = max(e.fitness for s in outcome.steps for e in s.evaluations)
        self.assertEqual(outcome.best_fitness, best_evaluated)
        self.assertGreaterEqual(outcome.best_fitness, 3 - 0.1 * 4)  # near the optimum 2.7
        self.assertTrue(outcome.best_mask[good].all())

    def test_extra_masks_are_evaluated_with_the_first_stars_but_do_not_search(self):
        fake = FakeEvaluator(np.ones(5, dtype=bool))
        everything = np.ones(5, dtype=bool)
        outcome = bbha.run(fake, 5, n_stars=4, iterations=1, seed=1, extra_masks=[everything])
        self.assertEqual(fake.batches, [5, 3])
        self.assertTrue(outcome.steps[0].masks[-1].all())

    def test_same_seed_same_run_other_seed_other_run(self):
        good = np.zeros(50, dtype=bool)
        good[::7] = True

        def masks(seed):
            o = bbha.run(FakeEvaluator(good), 50, n_stars=6, iterations=5, seed=seed)
            return [m.tobytes() for s in o.steps for m in s.masks]

        self.assertEqual(masks(42), masks(42))
        self.assertNotEqual(masks(42), masks(43))

    def test_random_state_gives_the_same_selected_features_with_real_models(self):
        data, _ = planted(n_molecules=20, n_samples=60)
        spec = ModelSpec("svm", cv_folds=3, random_state=9)

        def selected():
            return list(bbha.run(SequentialEvaluator(spec, data), 20, 5, 2, seed=9).best_mask)

        self.assertEqual(selected(), selected())


class PlantedSignalTests(unittest.TestCase):
    """A few molecules drive survival; BBHA's subset must clearly beat all molecules."""

    def check(self, spec, data, margin):
        n = data.X.shape[1]
        outcome = bbha.run(SequentialEvaluator(spec, data), n, n_stars=10, iterations=6,
                           seed=spec.random_state, extra_masks=[np.ones(n, dtype=bool)])
        all_features = outcome.steps[0].evaluations[-1].fitness
        self.assertGreater(outcome.best_fitness, all_features + margin,
                           f"selected {outcome.best_fitness:.3f} vs all {all_features:.3f}")
        # best_metric is the subset's cross-validated C-index: other folds give about it.
        others = [
            evaluate(ModelSpec(**{**spec.__dict__, "random_state": seed}), data.X, data.event,
                     data.time, outcome.best_mask).fitness
            for seed in (101, 202, 303)
        ]
        self.assertAlmostEqual(np.mean(others), outcome.best_fitness, delta=0.06,
                               msg=f"recomputed {others} vs {outcome.best_fitness:.3f}")
        return outcome

    def test_svm(self):
        data, _ = planted(n_molecules=60, n_samples=100)
        self.check(ModelSpec("svm", cv_folds=3, random_state=1), data, margin=0.05)

    def test_rf(self):
        data, _ = planted(n_molecules=60, n_samples=100)
        self.check(ModelSpec("rf", cv_folds=3, rf_n_estimators=10, random_state=1), data, margin=0.05)


if __name__ == "__main__":
    unittest.main()
