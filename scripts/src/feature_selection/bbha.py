"""The Binary Black Hole Algorithm as Multiomix runs it: the original (Pashaei & Aydin,
Applied Soft Computing 56, 2017) and the improved one (Gholizadeh, Razavi & Shojaei).

Each star is a binary mask over the molecules; its fitness is the model's (higher is
better). The initial stars have a number of molecules drawn uniformly from 1 to n, placed
at random. The black hole is the fittest star; a star of equal fitness and fewer molecules
also takes its place. Each iteration:

1. every star but the black hole moves, molecule by molecule, and is binarised: kept where
   `|tanh(x)|` exceeds the threshold (0.6 by default; `None` draws a new uniform threshold
   per molecule). A star left with no molecule is drawn again as a new random star.
   - original: `x + U(0,1) * (x_BH - x)`;
   - improved, at the i-th move (0-based) of N: `w = 1 - i/N`, `d1 = coeff_1 + w`,
     `d2 = coeff_2 + w`, `x + d1 * U(0,1) * (x_BH - x) + d2 * U(0,1) * (x_own_best - x)`,
     where each star keeps its own best mask so far;
2. the moved stars are evaluated, all in one batch (the evaluator may run it in parallel);
3. the batch is compared with the black hole star by star: a fitter star, or an equally fit
   one with fewer molecules, takes its place (the old black hole becomes a star again);
4. the event horizon: R = f_BH / sum_i f_i (original) or (1/f_BH) / sum_i (1/f_i)
   (improved) over the stars' fitness. A star whose mask is at a Euclidean distance below R
   from the black hole's mask is swallowed: the original replaces it with a new random
   star, the improved toggles one random molecule of it.

The one difference from Multiomix's sequential run is the batch: Multiomix scores the
stars one after another and checks each against the black hole and the horizon of that
moment. Here the whole iteration is evaluated first, which is what lets the evaluations run
in parallel; the comparisons of step 3 then happen in the stars' order, so the black hole
ends the same, and the horizon is applied once, with the iteration's final black hole.

The horizon uses magnitudes |f| over the stars with a finite fitness (a failed evaluation is
-inf). That is the formula itself whenever all fitness values have one sign, which is every
real case: a C-index is >= 0 and a Cox log-likelihood is < 0. R is then at most 1, so only
a star on the black hole's very mask (distance 0) is swallowed. In the improved horizon a
fitness of exactly 0 has no inverse: such stars are left out of the sum, and a black hole of
fitness 0 gives R = 0 (nothing swallowed).

All random numbers come from one `numpy.random.Generator`, so the same seed and data give
the same run wherever the evaluations happen.
"""

import time
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import numpy as np

from .models import Evaluation

ORIGINAL = 1
IMPROVED = 2
DEFAULT_THRESHOLD = 0.6
COEFF_1 = (2.2, 2.35)
COEFF_2 = (0.1, 0.2, 0.3)
DEFAULT_COEFF_1 = 2.35
DEFAULT_COEFF_2 = 0.2


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
    swallowed: List[int] = field(default_factory=list)  # stars swallowed per iteration


def random_star(rng: np.random.Generator, n: int) -> np.ndarray:
    """A mask of a uniformly drawn size 1..n with its molecules placed at random."""
    size = int(rng.integers(1, n + 1))
    star = np.zeros(n, dtype=bool)
    star[rng.choice(n, size=size, replace=False)] = True
    return star


def settle(star: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The star, or a new random star when it has no molecule left."""
    return star if star.any() else random_star(rng, len(star))


def move(star: np.ndarray, black_hole: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The original move: the continuous position after a pull toward the black hole."""
    x = star.astype(float)
    return x + rng.random(len(x)) * (black_hole.astype(float) - x)


def improved_move(
    star: np.ndarray,
    black_hole: np.ndarray,
    own_best: np.ndarray,
    rng: np.random.Generator,
    iteration: int,
    iterations: int,
    coeff_1: float,
    coeff_2: float,
) -> np.ndarray:
    """The improved move at `iteration` (0-based) of `iterations`; the draws toward the
    black hole come first, then those toward the star's own best."""
    x = star.astype(float)
    w = 1.0 - iteration / iterations
    toward_hole = rng.random(len(x))
    toward_own = rng.random(len(x))
    return (
        x
        + (coeff_1 + w) * toward_hole * (black_hole.astype(float) - x)
        + (coeff_2 + w) * toward_own * (own_best.astype(float) - x)
    )


def binarise(
    position: np.ndarray, rng: np.random.Generator, threshold: Optional[float] = DEFAULT_THRESHOLD
) -> np.ndarray:
    """1 where |tanh(position)| exceeds the threshold (a new uniform one per molecule when
    None). May be empty: see `settle`."""
    limit = rng.random(len(position)) if threshold is None else threshold
    return np.abs(np.tanh(position)) > limit


def toggle_one(star: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The star with one randomly chosen molecule switched (the improved swallow)."""
    out = star.copy()
    i = int(rng.integers(len(out)))
    out[i] = not out[i]
    return out


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance between two masks: the square root of the molecules they differ in."""
    return float(np.sqrt(np.count_nonzero(np.asarray(a, bool) != np.asarray(b, bool))))


def takes_place(fitness: float, size: int, best_fitness: float, best_size: int) -> bool:
    """Whether a star takes the black hole's place (or a star's own best)."""
    return fitness > best_fitness or (fitness == best_fitness and size < best_size)


def event_horizon(fitness: np.ndarray, black_hole: int) -> float:
    """R = f_BH / sum f_i, on magnitudes, over the stars with a finite fitness."""
    finite = np.abs(fitness[np.isfinite(fitness)])
    total = finite.sum()
    if total <= 0 or not np.isfinite(fitness[black_hole]):
        return 0.0
    return float(abs(fitness[black_hole]) / total)


def improved_event_horizon(fitness: np.ndarray, black_hole: int) -> float:
    """R = (1/f_BH) / sum (1/f_i), on magnitudes, over the stars with a finite non-zero fitness."""
    magnitudes = np.abs(fitness[np.isfinite(fitness)])
    inverses = 1.0 / magnitudes[magnitudes > 0]
    hole = abs(fitness[black_hole])
    if not np.isfinite(hole) or hole == 0 or inverses.sum() <= 0:
        return 0.0
    return float((1.0 / hole) / inverses.sum())


def swallowed(stars: Sequence[np.ndarray], black_hole: int, radius: float) -> List[int]:
    """The stars whose mask is within `radius` of the black hole's (never the black hole)."""
    hole = stars[black_hole]
    return [i for i, s in enumerate(stars) if i != black_hole and distance(s, hole) < radius]


def evaluations_total(n_stars: int, iterations: int, n_extra: int = 0) -> int:
    """The evaluations `run` makes: every initial star and extra mask, then every star but
    the black hole at each iteration. A swallowed star is replaced without an evaluation
    of its own; it is evaluated, as every star, after its next move (after the last
    iteration it is not evaluated at all)."""
    return n_stars + n_extra + iterations * (n_stars - 1)


def run(
    evaluator,
    n_molecules: int,
    n_stars: int,
    iterations: int,
    seed: Optional[int] = None,
    threshold: Optional[float] = DEFAULT_THRESHOLD,
    version: int = ORIGINAL,
    coeff_1: float = DEFAULT_COEFF_1,
    coeff_2: float = DEFAULT_COEFF_2,
    extra_masks: Optional[List[np.ndarray]] = None,
    log=lambda message: None,
    progress=None,
) -> Outcome:
    """Runs BBHA: the initial stars, then `iterations` moves, each evaluated as one batch.
    `extra_masks` are evaluated with the initial stars (in the same batch) but take no part
    in the search; their evaluations are in the first step after the stars'. `progress`,
    when given, is called after each iteration (0: the initial stars) with the iteration,
    the black hole's fitness and molecules, and the evaluations done so far."""
    if version not in (ORIGINAL, IMPROVED):
        raise ValueError(f"BBHA version {version} is not {ORIGINAL} or {IMPROVED}")
    improved = version == IMPROVED
    rng = np.random.default_rng(seed)
    stars = [random_star(rng, n_molecules) for _ in range(n_stars)]
    fitness = np.full(n_stars, -np.inf)
    own_best = [s.copy() for s in stars]
    own_fitness = np.full(n_stars, -np.inf)
    black_hole = 0
    steps: List[Step] = []
    swallowed_per_iteration: List[int] = []
    horizon = improved_event_horizon if improved else event_horizon
    extra = list(extra_masks or [])
    done = 0

    for iteration in range(iterations + 1):
        if iteration == 0:
            evaluated = list(range(n_stars))
            batch = stars + extra
        else:
            evaluated = [i for i in range(n_stars) if i != black_hole]
            for i in evaluated:
                if improved:
                    x = improved_move(stars[i], stars[black_hole], own_best[i], rng,
                                      iteration - 1, iterations, coeff_1, coeff_2)
                else:
                    x = move(stars[i], stars[black_hole], rng)
                stars[i] = settle(binarise(x, rng, threshold), rng)
            batch = [stars[i] for i in evaluated]
        started = time.perf_counter()
        evaluations = evaluator.evaluate(batch)
        steps.append(Step(iteration, batch, evaluations, time.perf_counter() - started))
        done += len(evaluations)

        for i, e in zip(evaluated, evaluations):
            fitness[i] = e.fitness
            size = int(stars[i].sum())
            if takes_place(e.fitness, size, own_fitness[i], int(own_best[i].sum())):
                own_best[i], own_fitness[i] = stars[i].copy(), e.fitness
            if takes_place(e.fitness, size, fitness[black_hole], int(stars[black_hole].sum())):
                black_hole = i

        radius = horizon(fitness, black_hole)
        inside = swallowed(stars, black_hole, radius)
        for i in inside:
            stars[i] = settle(toggle_one(stars[i], rng), rng) if improved else random_star(rng, n_molecules)
        swallowed_per_iteration.append(len(inside))
        log(
            f"iteration {iteration}/{iterations}: best fitness {fitness[black_hole]:.4f} "
            f"({int(stars[black_hole].sum())} molecules), {len(inside)} of {n_stars} stars "
            f"swallowed (event horizon {radius:.4f})"
        )
        if progress is not None:
            progress(iteration, fitness[black_hole], int(stars[black_hole].sum()), done)
    return Outcome(stars[black_hole].copy(), float(fitness[black_hole]), steps, swallowed_per_iteration)
