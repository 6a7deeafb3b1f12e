"""Bootstrap confidence intervals, vectorized across resamples.

Each resample is a vector of row counts (how often each row was drawn), so a
metric over B resamples is one matrix operation instead of B calls: means
(log loss, Brier, accuracy) are a matrix-vector product, and ROC AUC is
computed from cumulative counts of negatives below each positive
(ties count one half, as in sklearn). Resamples are processed in chunks to
bound memory (chunk x rows counts at a time).

The same counts drive both models in `paired_auc_difference`, which is what
makes the comparison paired.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

DEFAULT_RESAMPLES = 1_000
_CHUNK_CELLS = 20_000_000  # counts held at once: chunk * rows


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float
    confidence: float
    resamples: int

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


def _check(labels: np.ndarray, *scores: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.size == 0:
        raise ValueError("labels must be a non-empty 1-D array")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be 0 or 1")
    if labels.min() == labels.max():
        raise ValueError("labels hold one class only: AUC is undefined")
    for score in scores:
        if np.shape(score) != labels.shape:
            raise ValueError(f"scores have shape {np.shape(score)}, labels {labels.shape}")
    return labels.astype(bool)


def _poisson_table() -> np.ndarray:
    """Poisson(1) quantiles of 2**16 equal slices of [0, 1): a 16-bit draw indexes a count.

    numpy's own Poisson sampler is ~8x slower here; the table's granularity
    (1.5e-5) only clips counts above 7, which have probability 1e-5.
    """
    cdf = np.cumsum(np.exp(-1.0) / np.cumprod(np.r_[1.0, np.arange(1, 12)]))
    midpoints = (np.arange(1 << 16) + 0.5) / (1 << 16)
    return np.searchsorted(cdf, midpoints).astype(np.uint8)


_POISSON_TABLE = _poisson_table()


def resample_counts(rows: int, resamples: int, seed: int | None = 0) -> Iterator[np.ndarray]:
    """Yield (chunk, rows) uint8 matrices: how often each row is drawn in each resample.

    This is the Poisson bootstrap (each row drawn Poisson(1) times, independently),
    which matches the multinomial bootstrap for large samples and needs no
    fixed total; every statistic here normalises by the drawn weight.
    """
    rng = np.random.default_rng(seed)
    chunk = max(1, min(resamples, _CHUNK_CELLS // rows))
    done = 0
    while done < resamples:
        size = min(chunk, resamples - done)
        yield _POISSON_TABLE[rng.integers(0, 1 << 16, size=(size, rows), dtype=np.uint16)]
        done += size


class _RankedScores:
    """Per positive row, how many negatives score below it (and at or below), found once.

    Each resample's AUC is then a cumulative sum over the negatives' counts and
    two lookups per positive: O(rows) with no sort inside the loop.
    """

    def __init__(self, positive: np.ndarray, scores: np.ndarray):
        negatives = np.flatnonzero(~positive)
        self.positives = np.flatnonzero(positive)
        self.negatives = negatives[np.argsort(scores[negatives], kind="stable")]
        sorted_negative_scores = scores[self.negatives]
        positive_scores = scores[self.positives]
        self.below = np.searchsorted(sorted_negative_scores, positive_scores, side="left")
        self.at_or_below = np.searchsorted(sorted_negative_scores, positive_scores, side="right")

    def auc(self, counts: np.ndarray) -> np.ndarray:
        """AUC under each row of `counts`, given in the original row order."""
        return self.auc_split(counts[:, self.negatives], counts[:, self.positives])

    def auc_split(self, negative_counts: np.ndarray, positive_counts: np.ndarray) -> np.ndarray:
        """AUC from counts already in (sorted negatives, positives) order: no gather needed."""
        cumulative = np.zeros((negative_counts.shape[0], negative_counts.shape[1] + 1), dtype=np.int32)
        np.cumsum(negative_counts, axis=1, dtype=np.int32, out=cumulative[:, 1:])
        # A tie earns half a win: (below + at_or_below) / 2.
        credit = cumulative[:, self.below] + cumulative[:, self.at_or_below]
        wins = 0.5 * np.einsum("ij,ij->i", positive_counts, credit, dtype=np.float64)
        return wins / (positive_counts.sum(axis=1, dtype=np.float64) * cumulative[:, -1])


def auc_from_counts(labels: np.ndarray, scores: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """ROC AUC of `scores` under each resample (row of `counts`)."""
    return _RankedScores(_check(labels, scores), np.asarray(scores)).auc(np.atleast_2d(counts).astype(np.int64))


def _interval(estimate: float, samples: np.ndarray, confidence: float) -> Interval:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    tail = (1 - confidence) / 2
    low, high = np.nanquantile(samples, [tail, 1 - tail])
    return Interval(float(estimate), float(low), float(high), confidence, int(np.isfinite(samples).sum()))


def _resampled(statistic: Callable[[np.ndarray], np.ndarray], rows: int, resamples: int, seed: int | None):
    """`statistic` of each resample (a row of counts), chunk by chunk; one it cannot score is NaN."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.concatenate([statistic(counts) for counts in resample_counts(rows, resamples, seed)])


def bootstrap_auc(
    labels: np.ndarray,
    scores: np.ndarray,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = 0.95,
    seed: int | None = 0,
) -> Interval:
    """Percentile interval of ROC AUC. A resample that drew one class only is skipped (NaN)."""
    positive = _check(labels, scores)
    ranked = _RankedScores(positive, np.asarray(scores))
    full = ranked.auc(np.ones((1, positive.size), dtype=np.int64))[0]
    # Poisson counts are independent per row, so each resample's counts can be
    # drawn straight into (sorted negatives, positives) order.
    split = ranked.negatives.size
    samples = _resampled(lambda c: ranked.auc_split(c[:, :split], c[:, split:]), positive.size, resamples, seed)
    return _interval(full, samples, confidence)


def paired_auc_difference(
    labels: np.ndarray,
    scores_a: np.ndarray,
    scores_b: np.ndarray,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = 0.95,
    seed: int | None = 0,
) -> Interval:
    """Interval of AUC(b) - AUC(a) on the same rows, each resample shared by both models."""
    positive = _check(labels, scores_a, scores_b)
    ranked_a, ranked_b = _RankedScores(positive, np.asarray(scores_a)), _RankedScores(positive, np.asarray(scores_b))
    ones = np.ones((1, positive.size), dtype=np.int64)
    full = ranked_b.auc(ones)[0] - ranked_a.auc(ones)[0]
    samples = _resampled(lambda c: ranked_b.auc(c) - ranked_a.auc(c), positive.size, resamples, seed)
    return _interval(full, samples, confidence)


def bootstrap_mean(
    values: np.ndarray, resamples: int = DEFAULT_RESAMPLES, confidence: float = 0.95, seed: int | None = 0
) -> Interval:
    """Percentile interval of a per-row mean: log loss, Brier score, accuracy, error rate."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError("values must be a non-empty 1-D array")
    samples = _resampled(lambda c: (c @ values) / c.sum(axis=1, dtype=np.float64), values.size, resamples, seed)
    return _interval(values.mean(), samples, confidence)


def paired_ece_difference(
    labels: np.ndarray,
    scores_a: np.ndarray,
    scores_b: np.ndarray,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = 0.95,
    seed: int | None = 0,
    bins: int = 10,
) -> Interval:
    """Interval of ECE(b) - ECE(a) on the same rows (equal-width score bins), each resample shared by both models.

    A row's bin does not change under resampling, so each model's binned sums over B resamples
    are one product of the counts with a rows x bins matrix.
    """
    labels = _check(labels, scores_a, scores_b).astype(np.float64)

    def gaps(scores: np.ndarray) -> np.ndarray:
        """Rows x bins: each row's label minus score, in its bin's column."""
        scores = np.asarray(scores, dtype=np.float64)
        which = np.clip((scores * bins).astype(int), 0, bins - 1)
        table = np.zeros((scores.size, bins))
        table[np.arange(scores.size), which] = labels - scores
        return table

    gaps_a, gaps_b = gaps(scores_a), gaps(scores_b)

    def ece(counts: np.ndarray, gaps: np.ndarray) -> np.ndarray:
        return np.abs(counts @ gaps).sum(axis=1) / counts.sum(axis=1)

    ones = np.ones((1, labels.size))
    full = ece(ones, gaps_b)[0] - ece(ones, gaps_a)[0]
    samples = _resampled(lambda c: ece(c, gaps_b) - ece(c, gaps_a), labels.size, resamples, seed)
    return _interval(full, samples, confidence)
