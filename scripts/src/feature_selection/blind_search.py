"""Blind Search: the fitness of every non-empty subset of the molecules (2^n - 1).

The cost doubles with each molecule, so datasets above `MAX_MOLECULES` are refused
before Spark starts. The limit: 12 molecules are 4095 evaluations, about as many as a
BBHA run of 15 stars over 290 iterations; with the default 10-fold svm that is minutes on
two cores and well under a minute on a small cluster. 13 would double it, and every
molecule after that doubles it again.
"""

from typing import Iterator, List, Optional

import numpy as np

from .bbha import Outcome, Step

MAX_MOLECULES = 12
BATCH = 512  # subsets per Spark job: many tasks each, without one huge job


def subsets(n: int) -> Iterator[np.ndarray]:
    """Every non-empty subset of n molecules, as masks, in binary counting order."""
    bits = np.arange(n)
    for k in range(1, 2**n):
        yield ((k >> bits) & 1).astype(bool)


def run(evaluator, n_molecules: int, log=lambda message: None, batch: int = BATCH) -> Outcome:
    import time

    if n_molecules > MAX_MOLECULES:
        raise ValueError(f"{n_molecules} molecules is over the limit of {MAX_MOLECULES}")
    best_mask: Optional[np.ndarray] = None
    best = float("-inf")
    steps: List[Step] = []
    pending: List[np.ndarray] = []
    all_subsets = list(subsets(n_molecules))
    for start in range(0, len(all_subsets), batch):
        pending = all_subsets[start : start + batch]
        began = time.perf_counter()
        evaluations = evaluator.evaluate(pending)
        steps.append(Step(len(steps) + 1, pending, evaluations, time.perf_counter() - began))
        for mask, e in zip(pending, evaluations):
            # Ties keep the earlier subset, which has fewer or lower-numbered molecules.
            if e.fitness > best:
                best, best_mask = e.fitness, mask
        log(f"{start + len(pending)} of {len(all_subsets)} subsets, best fitness {best:.4f}")
    assert best_mask is not None
    return Outcome(best_mask.copy(), best, steps)
