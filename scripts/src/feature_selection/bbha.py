"""The Binary Black Hole Algorithm (Pashaei & Aydin, Applied Soft Computing 56, 2017).

Each star is a binary mask over the molecules; its fitness is the model's (higher is
better). The fittest star is the black hole. Each iteration:

1. every other star moves toward the black hole, `x + rand * (x_BH - x)` per molecule with
   a fresh uniform `rand`, and is binarised through the transfer function `|tanh(.)|`
   against a threshold (a fresh uniform number per molecule by default, or a fixed one);
2. the moved stars are evaluated, all in one batch (one Spark task each);
3. a star fitter than the black hole takes its place (the old black hole becomes a star);
4. the event horizon is `R = |f_BH| / sum_i |f_i|`; a star whose fitness is within `R` of
   the black hole's is swallowed and replaced by a new random star (evaluated after its
   move in the next iteration).

A mask never stays empty: binarising to all zeros keeps one random molecule. All random
numbers come from one `numpy.random.Generator`, so the same seed and data give the same
run wherever the evaluations happen.
"""

from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np

from .models import Evaluation


@dataclass
class Step:
    """One batch of evaluations and the iteration it belongs to (0: initial stars)."""

    iteration: int
    masks: List[np.ndarray]
    evaluations: List[Evaluation]
    seconds: float = 0.0


@dataclass
class Outcome:
    best_mask: np.ndarray
    best_fitness: float
    steps: List[Step] = field(default_factory=list)


def random_star(rng: np.random.Generator, n: int) -> np.ndarray:
    star = rng.random(n) < 0.5
    return ensure_not_empty(star, rng)


def ensure_not_empty(star: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if not star.any():
        star = star.copy()
        star[rng.integers(len(star))] = True
    return star


def move(star: np.ndarray, black_hole: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The continuous position after the move toward the black hole."""
    x = star.astype(float)
    return x + rng.random(len(x)) * (black_hole.astype(float) - x)


def binarise(
    position: np.ndarray, rng: np.random.Generator, threshold: Optional[float] = None
) -> np.ndarray:
    """1 where |tanh(position)| exceeds the threshold (random per molecule when None)."""
    limit = rng.random(len(position)) if threshold is None else threshold
    return ensure_not_empty(np.abs(np.tanh(position)) > limit, rng)


def event_horizon(fitness: np.ndarray, black_hole: int) -> float:
    """R = |f_BH| / sum |f_i| over the stars with a fitness."""
    finite = fitness[np.isfinite(fitness)]
    total = np.abs(finite).sum()
    return float(abs(fitness[black_hole]) / total) if total > 0 else 0.0


def swallowed(fitness: np.ndarray, black_hole: int, radius: float) -> List[int]:
    """The stars inside the event horizon (never the black hole itself)."""
    return [
        i
        for i, f in enumerate(fitness)
        if i != black_hole and (not np.isfinite(f) or abs(fitness[black_hole] - f) < radius)
    ]


def run(
    evaluator,
    n_molecules: int,
    n_stars: int,
    iterations: int,
    seed: Optional[int] = None,
    threshold: Optional[float] = None,
    extra_masks: Optional[List[np.ndarray]] = None,
    log=lambda message: None,
) -> Outcome:
    """Runs BBHA. `extra_masks` are evaluated with the initial stars (in the same batch)
    but take no part in the search; their evaluations are in the first step after the
    stars'."""
    import time

    rng = np.random.default_rng(seed)
    stars = [random_star(rng, n_molecules) for _ in range(n_stars)]
    extra = list(extra_masks or [])
    started = time.perf_counter()
    first = evaluator.evaluate(stars + extra)
    steps = [Step(0, stars + extra, first, time.perf_counter() - started)]
    fitness = np.array([e.fitness for e in first[:n_stars]])
    black_hole = int(np.argmax(fitness))
    log(f"iteration 0: {n_stars} stars, best fitness {fitness[black_hole]:.4f}")

    for iteration in range(1, iterations + 1):
        moved_at = [i for i in range(n_stars) if i != black_hole]
        for i in moved_at:
            stars[i] = binarise(move(stars[i], stars[black_hole], rng), rng, threshold)
        started = time.perf_counter()
        evaluations = evaluator.evaluate([stars[i] for i in moved_at])
        steps.append(
            Step(iteration, [stars[i] for i in moved_at], evaluations, time.perf_counter() - started)
        )
        for i, e in zip(moved_at, evaluations):
            fitness[i] = e.fitness
        # A fitter star becomes the black hole: the fittest of this iteration wins.
        best = int(np.argmax(fitness))
        if fitness[best] > fitness[black_hole]:
            black_hole = best
        radius = event_horizon(fitness, black_hole)
        for i in swallowed(fitness, black_hole, radius):
            stars[i] = random_star(rng, n_molecules)
            fitness[i] = -np.inf  # unknown until it has moved and been evaluated
        log(
            f"iteration {iteration}: best fitness {fitness[black_hole]:.4f} "
            f"({int(stars[black_hole].sum())} molecules), event horizon {radius:.4f}"
        )
    return Outcome(stars[black_hole].copy(), float(fitness[black_hole]), steps)
