"""How a variant is measured: its predictions in serving-sized batches, and its latency.

Both runtimes get one intra-op thread (torch.set_num_threads(1) for the
measurement, onnxruntime sessions built with intra_op_num_threads=1): a fair
comparison, and what a server running one worker per core gives each request.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

from domainflow.data.features import FeatureMatrix
from domainflow.models.predictors import Predictor

WARMUP_CALLS = 20


@contextmanager
def one_torch_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def take_rows(features: FeatureMatrix, rows: int, start: int = 0) -> FeatureMatrix:
    """`rows` rows from `start` on, wrapping around when there are fewer."""
    index = (start + np.arange(rows)) % len(features.numeric)
    return FeatureMatrix(numeric=features.numeric[index], categorical=features.categorical[index])


def predict_in_batches(predictor: Predictor, features: FeatureMatrix, batch_size: int) -> np.ndarray:
    """Predictions as served, `batch_size` rows at a time.

    Dynamic INT8 scales activations per batch, so its outputs depend on the
    batch size; measuring at the serving batch size measures what is served.
    """
    rows = len(features.numeric)
    parts = [
        predictor.predict(take_rows(features, min(batch_size, rows - start), start))
        for start in range(0, rows, batch_size)
    ]
    return np.concatenate(parts).astype(np.float64)


def time_predictors(
    predictors: dict[str, Predictor], features: FeatureMatrix, batch_size: int, repeats: int
) -> dict[str, tuple[float, float]]:
    """p50 and p95 milliseconds per call of each predictor on `batch_size` rows.

    Calls are interleaved, one of each variant per round, so a slow spell on a
    shared machine hits every variant alike; the order rotates every round,
    because a call runs slower right after another runtime's call (cold caches).
    """
    batch = take_rows(features, batch_size)
    for predictor in predictors.values():
        for _ in range(WARMUP_CALLS):
            predictor.predict(batch)
    names = list(predictors)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(repeats):
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
            started = time.perf_counter()
            predictors[name].predict(batch)
            samples[name].append((time.perf_counter() - started) * 1e3)
    return {name: (float(np.percentile(ms, 50)), float(np.percentile(ms, 95))) for name, ms in samples.items()}
