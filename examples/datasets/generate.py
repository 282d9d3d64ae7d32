#!/usr/bin/env python3
"""Writes survival datasets in Multiomix's format, with a planted signal.

The files are what Multiomix hands the jobs (pandas `to_csv(sep='\\t')`, index included):
- molecules.csv: one row per molecule, one column per sample; identifiers `NAME_TYPE`
  (TYPE 1 mRNA, 2 miRNA, 3 CNA, 4 methylation), some NAMEs containing `_`;
- clinical.csv: one row per sample, event (0/1) first, then time (months).

A few molecules drive survival: the hazard is exp(sum of beta * value) over them, the
others are noise, so a good feature selection finds them. The same seed gives the same
files. Without arguments it rewrites the example of this folder (example/: 30 molecules x
60 samples, signal in 3); `--molecules`, `--samples`, `--signal`, `--seed` and `--out`
make others (the job benchmark's reference dataset is 200 x 150).
"""

import argparse
import os
from typing import List, Tuple

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
_TYPES = [
    lambda i: f"GENE{i}_1",
    lambda i: f"hsa-mir-{i}_2",
    lambda i: f"CNA_LOSS_G{i}_3",
    lambda i: f"cg{i:06d}_4",
]


def identifiers(n: int) -> List[str]:
    return [_TYPES[i % 4](i) for i in range(n)]


def signal_indices(n_molecules: int, n_signal: int) -> List[int]:
    """Where the signal molecules are: spread over the file, one of them of each type."""
    step = max(1, n_molecules // n_signal)
    return [min(n_molecules - 1, i * step + i % 4) for i in range(n_signal)]


def generate(n_molecules: int, n_samples: int, n_signal: int = 3, seed: int = 7) -> Tuple:
    """(molecule ids, sample ids, values molecules x samples, event, time, signal ids)."""
    rng = np.random.default_rng(seed)
    values = rng.normal(8.0, 1.0, size=(n_molecules, n_samples))
    signal = signal_indices(n_molecules, n_signal)
    betas = np.array([1.2 if k % 2 == 0 else -1.2 for k in range(n_signal)])
    risk = betas @ (values[signal] - 8.0)
    event_time = rng.exponential(30.0 * np.exp(-risk))
    censor_time = rng.uniform(5.0, 120.0, size=n_samples)
    event = (event_time <= censor_time).astype(int)
    time = np.maximum(np.minimum(event_time, censor_time), 0.1)
    ids = identifiers(n_molecules)
    samples = [f"TCGA-{i:04d}" for i in range(n_samples)]
    return ids, samples, values, event, time, [ids[i] for i in signal]


def write(out: str, n_molecules: int, n_samples: int, n_signal: int = 3, seed: int = 7) -> List[str]:
    """Writes out/molecules.csv and out/clinical.csv; returns the signal molecules."""
    ids, samples, values, event, time, signal = generate(n_molecules, n_samples, n_signal, seed)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "molecules.csv"), "w", newline="") as f:
        f.write("\t".join([""] + samples) + "\n")
        for name, row in zip(ids, values):
            f.write("\t".join([name] + [f"{v:.4f}" for v in row]) + "\n")
    with open(os.path.join(out, "clinical.csv"), "w", newline="") as f:
        f.write("\tOS_STATUS\tOS_MONTHS\n")
        for s, e, t in zip(samples, event, time):
            f.write(f"{s}\t{e}\t{t:.2f}\n")
    return signal


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--molecules", type=int, default=30)
    p.add_argument("--samples", type=int, default=60)
    p.add_argument("--signal", type=int, default=3)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out", default=os.path.join(HERE, "example"))
    a = p.parse_args()
    signal = write(a.out, a.molecules, a.samples, a.signal, a.seed)
    print(f"{a.out}: {a.molecules} molecules x {a.samples} samples; signal in {', '.join(signal)}")


if __name__ == "__main__":
    main()
