"""Bootstrap CI of ROC AUC, 1,000 resamples over 100,000 rows: vectorized vs a loop.

    python benchmarks/bootstrap_ci.py [--rows 100000] [--resamples 1000]

The baseline is what one would write first: draw indices, call sklearn's
roc_auc_score, 1,000 times. It is timed on 50 resamples and scaled, to keep
the run short; both run in this process on one thread.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.metrics import roc_auc_score
from threadpoolctl import threadpool_limits

from domainflow.evaluation.bootstrap import bootstrap_auc

BASELINE_SAMPLE = 50


def looped_bootstrap(labels: np.ndarray, scores: np.ndarray, resamples: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.empty(resamples)
    for i in range(resamples):
        rows = rng.integers(0, labels.size, labels.size)
        out[i] = roc_auc_score(labels[rows], scores[rows])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--resamples", type=int, default=1_000)
    options = parser.parse_args()
    rng = np.random.default_rng(0)
    labels = rng.random(options.rows) < 0.3
    scores = rng.normal(size=options.rows) + 0.9 * labels

    with threadpool_limits(1):
        bootstrap_auc(labels, scores, resamples=10)  # warm-up
        started = time.perf_counter()
        interval = bootstrap_auc(labels, scores, resamples=options.resamples)
        vectorized = time.perf_counter() - started
        started = time.perf_counter()
        looped = looped_bootstrap(labels, scores, BASELINE_SAMPLE)
        baseline = (time.perf_counter() - started) * options.resamples / BASELINE_SAMPLE
    low, high = np.quantile(looped, [0.025, 0.975])
    print(f"rows={options.rows:,} resamples={options.resamples:,} (one thread)")
    ci = f"[{interval.low:.4f}, {interval.high:.4f}]"
    print(f"vectorized bootstrap:  {vectorized:6.2f} s   AUC {interval.estimate:.4f} {ci}")
    print(f"looped sklearn (est.): {baseline:6.2f} s   ({BASELINE_SAMPLE} resamples: [{low:.4f}, {high:.4f}])")
    print(f"ratio looped/vectorized: {baseline / vectorized:5.1f}x")


if __name__ == "__main__":
    main()
