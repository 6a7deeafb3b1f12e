"""Classification metrics for a candidate on one split, overall and per slice."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, brier_score_loss, f1_score, log_loss, roc_auc_score

from domainflow.evaluation.comparison import delong_test


def expected_calibration_error(labels: np.ndarray, scores: np.ndarray, bins: int = 10) -> float:
    """Mean |observed rate - mean score| over equal-width score bins, weighted by bin size."""
    labels, scores = np.asarray(labels, dtype=np.float64), np.asarray(scores, dtype=np.float64)
    which = np.clip((scores * bins).astype(int), 0, bins - 1)
    counts = np.bincount(which, minlength=bins)
    observed = np.bincount(which, weights=labels, minlength=bins)
    predicted = np.bincount(which, weights=scores, minlength=bins)
    filled = counts > 0
    gaps = np.abs(observed[filled] - predicted[filled]) / counts[filled]
    return float((gaps * counts[filled]).sum() / counts.sum())


def binary_metrics(labels: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    labels = np.asarray(labels)
    scores = np.clip(np.asarray(scores, dtype=np.float64), 1e-7, 1 - 1e-7)
    predicted = scores >= threshold
    return {
        "auc": float(roc_auc_score(labels, scores)),
        "log_loss": float(log_loss(labels, scores, labels=[0, 1])),
        "brier": float(brier_score_loss(labels, scores)),
        "accuracy": float(accuracy_score(labels, predicted)),
        "f1": float(f1_score(labels, predicted, zero_division=0.0)),
        "ece": expected_calibration_error(labels, scores),
    }


def slice_metrics(slices: pd.Series, labels: np.ndarray, scores: np.ndarray, min_rows: int = 200) -> pd.DataFrame:
    """binary_metrics per value of `slices` (e.g. carrier, month), one row each.

    Slices with fewer than `min_rows` rows or a single class are listed with
    their size and no metrics: too small to judge, but not hidden.
    """
    frame = pd.DataFrame({"slice": np.asarray(slices), "label": np.asarray(labels), "score": np.asarray(scores)})
    rows = []
    for value, part in frame.groupby("slice", sort=True, dropna=False):
        metrics = binary_metrics(part["label"].to_numpy(), part["score"].to_numpy()) if _judged(part, min_rows) else {}
        rows.append({"slice": value, "rows": len(part), **metrics})
    return pd.DataFrame(rows)


_COMPARED = ["auc", "reference_auc", "drop", "drop_se", "delong_p_value"]


def slice_auc_drops(
    slices: pd.Series, labels: np.ndarray, scores: np.ndarray, reference_scores: np.ndarray, min_rows: int = 200
) -> pd.DataFrame:
    """Per slice, the AUC of a model and of a reference on the same rows, and the drop (reference minus model).

    Slices too small to judge (as in `slice_metrics`) are listed with NaN figures.
    DeLong's standard error of the drop (`drop_se`) and p-value say whether it is more than noise.
    """
    frame = pd.DataFrame({"slice": np.asarray(slices), "label": np.asarray(labels), "score": np.asarray(scores)})
    frame["reference"] = np.asarray(reference_scores)
    rows = []
    for value, part in frame.groupby("slice", sort=True, dropna=False):
        row = {
            "slice": value,
            "rows": len(part),
            **dict.fromkeys(_COMPARED, np.nan),
        }
        if _judged(part, min_rows):
            row["auc"] = roc_auc_score(part["label"], part["score"])
            row["reference_auc"] = roc_auc_score(part["label"], part["reference"])
            row["drop"] = row["reference_auc"] - row["auc"]
            delong = delong_test(part["label"], part["reference"], part["score"])
            row["drop_se"], row["delong_p_value"] = delong.standard_error, delong.p_value
        rows.append(row)
    return pd.DataFrame(rows)


def _judged(part: pd.DataFrame, min_rows: int) -> bool:
    return len(part) >= min_rows and part["label"].nunique() == 2
