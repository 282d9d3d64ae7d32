#!/usr/bin/env python3
"""Writes the small example datasets next to this file.

molecules.csv: one row per molecule, one column per sample (expression values).
clinical.csv: one row per sample, with survival `time` (months) and `event` (1 = died).

A fixed seed makes the files identical on every run, and a few molecules are planted
with a known relation to the samples so that the feature ranking has a right answer:
GENE_03 and GENE_11 follow survival time closely (GENE_11 inversely); GENE_07 and
GENE_19 vary far more than the rest but are unrelated to time.
"""

import csv
import os
import random

SEED = 20230629
N_MOLECULES = 24
N_SAMPLES = 16

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> None:
    rng = random.Random(SEED)
    samples = [f"S{i:02d}" for i in range(1, N_SAMPLES + 1)]
    times = [round(rng.uniform(3.0, 120.0), 1) for _ in samples]
    events = [rng.randint(0, 1) for _ in samples]

    rows = []
    for m in range(1, N_MOLECULES + 1):
        name = f"GENE_{m:02d}"
        if name == "GENE_03":
            values = [5.0 + 0.05 * t + rng.gauss(0.0, 0.2) for t in times]
        elif name == "GENE_11":
            values = [12.0 - 0.04 * t + rng.gauss(0.0, 0.2) for t in times]
        elif name in ("GENE_07", "GENE_19"):
            values = [rng.uniform(0.0, 40.0) for _ in times]
        else:
            values = [rng.gauss(8.0, 1.0) for _ in times]
        rows.append([name] + [f"{v:.3f}" for v in values])

    with open(os.path.join(HERE, "molecules.csv"), "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["molecule"] + samples)
        writer.writerows(rows)

    with open(os.path.join(HERE, "clinical.csv"), "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["sample", "time", "event"])
        for s, t, e in zip(samples, times, events):
            writer.writerow([s, f"{t:.1f}", e])


if __name__ == "__main__":
    main()
