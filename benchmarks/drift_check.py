"""The drift check: the vectorized fast path against Evidently's DataDriftPreset, side by side.

    python benchmarks/drift_check.py [--sizes 100000 1000000] [--skip-evidently-above ROWS]

Synthetic seeded data: 20 columns (15 numeric, 5 categorical, with nulls; 4 shifted in the
current window), a 100k-row reference and current windows of each size. For each size it
times both (fast path median of --repeats runs, Evidently once) and reports how many of the
20 drifted verdicts agree and the largest score difference. Windows larger than
--sample-rows are also checked on a seeded sample of that many rows (the fast path's
max_exact_rows), against the exact verdicts.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from domainflow.monitoring.drift import detect_drift
from domainflow.monitoring.reports import evidently_drift

NUMERIC = [f"num_{i:02d}" for i in range(15)]
CATEGORICAL = [f"cat_{i}" for i in range(5)]
SHIFTED = {"num_00", "num_05", "num_10", "cat_0"}
LEVELS = np.array([f"level_{i}" for i in range(12)], dtype=object)


def make_frame(rows: int, shifted: bool, seed: int) -> pd.DataFrame:
    """Numeric columns of several shapes (normal, lognormal, hours, 4-valued counts); categoricals of 3-12 levels."""
    rng = np.random.default_rng(seed)
    columns = {}
    for i, name in enumerate(NUMERIC):
        shift = 0.5 if shifted and name in SHIFTED else 0.0
        shape = i % 4
        if shape == 0:
            values = rng.normal(shift, 1.0, rows)
        elif shape == 1:
            values = rng.lognormal(shift, 0.8, rows)
        elif shape == 2:
            values = np.floor(rng.uniform(5, 23, rows) + 4 * shift).astype(float)
        else:
            values = rng.binomial(3, 0.4 + 0.2 * shift, rows).astype(float)
        values[rng.random(rows) < 0.02] = np.nan
        columns[name] = values
    for i, name in enumerate(CATEGORICAL):
        levels = LEVELS[: 3 + 2 * i]
        weights = np.linspace(1.0, 2.0, len(levels))
        if shifted and name in SHIFTED:
            weights = weights[::-1] ** 2
        values = rng.choice(levels, size=rows, p=weights / weights.sum())
        values[rng.random(rows) < 0.02] = None
        columns[name] = values
    return pd.DataFrame(columns)


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference-rows", type=int, default=100_000)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=3, help="fast path runs per size (median)")
    parser.add_argument("--skip-evidently-above", type=int, default=None, help="time only the fast path above this")
    parser.add_argument("--sample-rows", type=int, default=200_000, help="max_exact_rows of the sampled fast path")
    args = parser.parse_args()

    reference = make_frame(args.reference_rows, shifted=False, seed=0)
    print(f"reference {len(reference):,} rows; {len(NUMERIC)} numeric + {len(CATEGORICAL)} categorical columns, "
          f"{len(SHIFTED)} shifted: {sorted(SHIFTED)}\n")  # fmt: skip
    started = time.perf_counter()
    import evidently  # noqa: F401  (its import, ~6 s, is not part of any timing below)

    print(f"(importing evidently took {time.perf_counter() - started:.1f} s)\n")
    exact_results = {}
    print(f"{'current rows':>12}  {'fast s':>7}  {'evidently s':>11}  {'speed-up':>8}  {'agree':>5}  "
          f"{'max |score diff|':>16}  drifted (fast)")  # fmt: skip
    for rows in args.sizes:
        current = make_frame(rows, shifted=True, seed=rows)
        exact = max(rows, len(reference))  # every row, no sampling

        def check(current=current, exact=exact):
            return detect_drift(reference, current, NUMERIC, CATEGORICAL, max_exact_rows=exact)

        fast, fast_s = check(), median_seconds(check, args.repeats)
        exact_results[rows] = (current, fast)
        drifted = ",".join(fast.drifted_columns())
        if args.skip_evidently_above is not None and rows > args.skip_evidently_above:
            print(f"{rows:>12,}  {fast_s:>7.2f}  {'skipped':>11}  {'':>8}  {'':>5}  {'':>16}  {drifted}")
            continue
        started = time.perf_counter()
        slow = evidently_drift(reference, current, NUMERIC, CATEGORICAL)
        slow_s = time.perf_counter() - started
        pairs = list(zip(fast.columns, slow.columns, strict=True))
        agree = sum(a.drifted == b.drifted and a.method == b.method for a, b in pairs)
        diff = max(abs(a.score - b.score) for a, b in pairs)
        print(f"{rows:>12,}  {fast_s:>7.2f}  {slow_s:>11.2f}  {slow_s / fast_s:>7.1f}x  {agree:>2}/{len(pairs)}  "
              f"{diff:>16.2e}  {drifted}")  # fmt: skip

    sampled_sizes = [rows for rows in args.sizes if rows > args.sample_rows]
    if sampled_sizes:
        print(f"\nsampled fast path (max_exact_rows={args.sample_rows:,}) against the exact one")
        print(f"{'current rows':>12}  {'sampled s':>9}  {'exact s':>7}  {'agree':>5}  {'max |score diff|':>16}  "
              f"{'sampling_error':>14}")  # fmt: skip
    for rows in sampled_sizes:
        current, exact = exact_results[rows]

        def check_sample(current=current):
            return detect_drift(reference, current, NUMERIC, CATEGORICAL, max_exact_rows=args.sample_rows)

        sampled, sampled_s = check_sample(), median_seconds(check_sample, args.repeats)
        pairs = list(zip(exact.columns, sampled.columns, strict=True))
        agree = sum(a.drifted == b.drifted for a, b in pairs)
        diff = max(abs(a.score - b.score) for a, b in pairs)
        print(f"{rows:>12,}  {sampled_s:>9.2f}  {exact.seconds:>7.2f}  {agree:>2}/{len(pairs)}  {diff:>16.2e}  "
              f"{sampled.sampling_error:>14.2e}")  # fmt: skip


if __name__ == "__main__":
    main()
