"""Blind Search: the fitness of every non-empty subset of the molecules (2^n - 1).

As Multiomix enumerates them: by size, smallest first (all single molecules, then all
pairs, ..., as `itertools.combinations` for k = 1..n). A subset replaces the best only when
strictly fitter, so of equally fit subsets the smaller is kept (of one size, the first
combination).

The cost doubles with each molecule, so datasets above `MAX_MOLECULES` are refused
before Spark starts. The limit: 12 molecules are 4095 evaluations, about as many as a
BBHA run of 15 stars over 290 iterations; with the default 10-fold svm that is minutes on
two cores and well under a minute on a small cluster. 13 would double it, and every
molecule after that doubles it again.
"""

import itertools
from typing import Iterator, List, Optional

import numpy as np

from .bbha import Outcome, Step

MAX_MOLECULES = 12
BATCH = 512  # subsets per Spark job: many tasks each, without one huge job


def subsets(n: int) -> Iterator[np.ndarray]:
    """Every non-empty subset of n molecules, as masks, by size and then in
    `itertools.combinations` order."""
    for k in range(1, n + 1):
        for chosen in itertools.combinations(range(n), k):
            mask = np.zeros(n, dtype=bool)
            mask[list(chosen)] = True
            yield mask


def evaluations_total(n_molecules: int) -> int:
    """Every non-empty subset is evaluated once."""
    return 2**n_molecules - 1


def chunks(n_molecules: int, batch: int = BATCH) -> int:
    """The batches `run` evaluates the subsets in."""
    return -(-evaluations_total(n_molecules) // batch)


def run(evaluator, n_molecules: int, log=lambda message: None, batch: int = BATCH,
        progress=None) -> Outcome:
    """Evaluates every subset in batches of `batch`. `progress`, when given, is called
    after each batch with the batches done, the best fitness and its molecules, and the
    evaluations done so far."""
    import time

    if n_molecules > MAX_MOLECULES:
        raise ValueError(f"{n_molecules} molecules is over the limit of {MAX_MOLECULES}")
    best_mask: Optional[np.ndarray] = None
    best = float("-inf")
    steps: List[Step] = []
    pending: List[np.ndarray] = []
    all_subsets = list(subsets(n_molecules))
    done = 0
    for start in range(0, len(all_subsets), batch):
        pending = all_subsets[start : start + batch]
        began = time.perf_counter()
        evaluations = evaluator.evaluate(pending)
        steps.append(Step(len(steps) + 1, pending, evaluations, time.perf_counter() - began))
        done += len(evaluations)
        for mask, e in zip(pending, evaluations):
            # Strictly fitter only: a tie keeps the earlier subset, which is no larger.
            if e.fitness > best:
                best, best_mask = e.fitness, mask
        log(f"{start + len(pending)} of {len(all_subsets)} subsets, best fitness {best:.4f}")
        if progress is not None:
            molecules = 0 if best_mask is None else int(best_mask.sum())
            progress(len(steps), best, molecules, done)
    assert best_mask is not None
    return Outcome(best_mask.copy(), best, steps)
