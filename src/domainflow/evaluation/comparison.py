"""Champion vs challenger on the same test rows: DeLong's test and McNemar's test.

The paired bootstrap of the AUC difference lives in `bootstrap.py`; these are
the two classical paired tests beside it. DeLong follows Sun & Xu (2014):
midranks give each model's structural components in O(n log n), and the
covariance of the two AUCs comes from them, so correlated models (the usual
case: a retrain of the same network) are compared with the right variance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class PairedTest:
    name: str
    statistic: float
    p_value: float
    difference: float  # b minus a: AUC for DeLong, accuracy for McNemar
    standard_error: float = 0.0  # of `difference`; 0 when the two agree row for row


def _midranks(values: np.ndarray) -> np.ndarray:
    return stats.rankdata(values, method="average")


def _structural_components(positive_scores: np.ndarray, negative_scores: np.ndarray):
    """AUC and the DeLong placement values V10 (per positive) and V01 (per negative)."""
    m, n = positive_scores.size, negative_scores.size
    ranks_all = _midranks(np.concatenate([positive_scores, negative_scores]))
    ranks_positive = _midranks(positive_scores)
    ranks_negative = _midranks(negative_scores)
    v10 = (ranks_all[:m] - ranks_positive) / n
    v01 = 1.0 - (ranks_all[m:] - ranks_negative) / m
    return v10.mean(), v10, v01


def delong_test(labels: np.ndarray, scores_a: np.ndarray, scores_b: np.ndarray) -> PairedTest:
    """Two-sided test of AUC(a) == AUC(b) on the same rows."""
    labels = np.asarray(labels).astype(bool)
    if labels.all() or not labels.any():
        raise ValueError("labels hold one class only: AUC is undefined")
    a, b = np.asarray(scores_a, dtype=np.float64), np.asarray(scores_b, dtype=np.float64)
    if a.shape != labels.shape or b.shape != labels.shape:
        raise ValueError("scores_a, scores_b and labels must have the same length")
    auc_a, v10_a, v01_a = _structural_components(a[labels], a[~labels])
    auc_b, v10_b, v01_b = _structural_components(b[labels], b[~labels])
    s10 = np.cov(np.vstack([v10_a, v10_b]))
    s01 = np.cov(np.vstack([v01_a, v01_b]))
    covariance = s10 / labels.sum() + s01 / (~labels).sum()
    variance = covariance[0, 0] + covariance[1, 1] - 2 * covariance[0, 1]
    difference = auc_b - auc_a
    if variance <= 0:
        # Identical rankings: no evidence of a difference.
        return PairedTest("delong", 0.0, 1.0, float(difference))
    error = float(np.sqrt(variance))
    z = difference / error
    return PairedTest("delong", float(z), float(2 * stats.norm.sf(abs(z))), float(difference), error)


def delong_auc_variance(labels: np.ndarray, scores: np.ndarray) -> float:
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    _, v10, v01 = _structural_components(scores[labels], scores[~labels])
    return float(v10.var(ddof=1) / v10.size + v01.var(ddof=1) / v01.size)


def mcnemar_test(labels: np.ndarray, predictions_a: np.ndarray, predictions_b: np.ndarray) -> PairedTest:
    """Do a and b make different numbers of mistakes on the same rows?

    Only discordant rows count. Exact binomial below 25 of them, otherwise the
    chi-square statistic with continuity correction (as statsmodels does).
    """
    labels = np.asarray(labels)
    correct_a = np.asarray(predictions_a) == labels
    correct_b = np.asarray(predictions_b) == labels
    only_a = int((correct_a & ~correct_b).sum())
    only_b = int((~correct_a & correct_b).sum())
    difference = (only_b - only_a) / labels.size
    discordant = only_a + only_b
    if discordant == 0:
        return PairedTest("mcnemar", 0.0, 1.0, 0.0)
    if discordant < 25:
        result = stats.binomtest(min(only_a, only_b), discordant, 0.5)
        return PairedTest("mcnemar-exact", float(min(only_a, only_b)), float(result.pvalue), difference)
    statistic = (abs(only_a - only_b) - 1) ** 2 / discordant
    return PairedTest("mcnemar", float(statistic), float(stats.chi2.sf(statistic, 1)), difference)
