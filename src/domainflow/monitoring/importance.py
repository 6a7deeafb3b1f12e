"""How much the served model leans on each feature: permutation importance on its scored test month.

Drift matters for a retrain in proportion to how much the model uses the drifted feature. The
importance is scikit-learn's `permutation_importance` around the model's own scoring function (any
served flavour: network, gradient boosting, ONNX), measured as the rise in log loss when the
feature's values are shuffled among the rows. It needs no access to the model's internals.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
from sklearn.inspection import permutation_importance
from sklearn.metrics import log_loss

logger = logging.getLogger(__name__)

EPSILON = 1e-6


class _Scored:
    """The smallest estimator `permutation_importance` takes: the scorer below does the predicting."""

    def __init__(self, predict: Callable[[pd.DataFrame], np.ndarray]) -> None:
        self.predict = predict

    def fit(self, *_):  # scikit-learn's checks look for it; the model is already trained
        return self


def feature_importance(
    predict: Callable[[pd.DataFrame], np.ndarray],
    rows: pd.DataFrame,
    labels: np.ndarray,
    *,
    repeats: int = 3,
    max_rows: int = 5_000,
    seed: int = 0,
) -> dict[str, float]:
    """Each column's mean rise in log loss when shuffled (a seeded sample of at most `max_rows` rows)."""
    started = time.perf_counter()
    if len(rows) > max_rows:
        picked = np.random.default_rng(seed).choice(len(rows), size=max_rows, replace=False)
        rows, labels = rows.iloc[np.sort(picked)], np.asarray(labels)[np.sort(picked)]
    labels = np.asarray(labels, dtype=float)

    def negative_log_loss(model: _Scored, frame: pd.DataFrame, y: np.ndarray) -> float:
        return -log_loss(y, np.clip(model.predict(frame), EPSILON, 1 - EPSILON), labels=[0, 1])

    found = permutation_importance(_Scored(predict), rows.reset_index(drop=True), labels, scoring=negative_log_loss,
                                   n_repeats=repeats, random_state=seed)  # fmt: skip
    importance = {str(c): float(v) for c, v in zip(rows.columns, found.importances_mean, strict=True)}
    logger.info("permutation importance on %d rows in %.1fs: %s", len(rows), time.perf_counter() - started,
                {c: round(v, 4) for c, v in sorted(importance.items(), key=lambda kv: -kv[1])})  # fmt: skip
    return importance
