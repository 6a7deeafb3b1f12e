"""Beta-Binomial posteriors: probability to be best and expected loss per variant."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from domainflow.evaluation.experiments.inputs import check_counts, check_open_unit


@dataclass(frozen=True)
class BayesianResult:
    """Per-variant posterior summaries from a Beta-Binomial model (tuples indexed like the input)."""

    posterior_mean: tuple[float, ...]
    credible_low: tuple[float, ...]
    credible_high: tuple[float, ...]
    prob_best: tuple[float, ...]
    expected_loss: tuple[float, ...]


def beta_binomial_comparison(
    successes: ArrayLike,
    trials: ArrayLike,
    prior: tuple[float, float] = (1.0, 1.0),
    draws: int = 100_000,
    seed: int = 0,
    credibility: float = 0.95,
) -> BayesianResult:
    """Beta-Binomial posteriors per variant, with Monte Carlo probability-to-be-best and expected loss.

    Expected loss is ``E[max_j p_j - p_i]``: the rate we expect to give up by shipping variant i, which is
    what a decision maker actually risks (unlike a p-value). Seeded so that verdicts are reproducible.
    """
    s, n = check_counts(successes, trials)
    credibility = check_open_unit("credibility", credibility)
    if len(prior) != 2 or min(prior) <= 0:
        raise ValueError(f"prior must be two positive Beta parameters, got {prior}")
    if draws < 1:
        raise ValueError(f"draws must be positive, got {draws}")
    a_post, b_post = prior[0] + s, prior[1] + n - s
    rng = np.random.default_rng(seed)
    samples = rng.beta(a_post, b_post, size=(int(draws), s.size))
    best = samples.max(axis=1, keepdims=True)
    prob_best = np.bincount(samples.argmax(axis=1), minlength=s.size) / draws
    loss = (best - samples).mean(axis=0)
    tail = (1 - credibility) / 2
    return BayesianResult(
        posterior_mean=tuple((a_post / (a_post + b_post)).tolist()),
        credible_low=tuple(stats.beta.ppf(tail, a_post, b_post).tolist()),
        credible_high=tuple(stats.beta.ppf(1 - tail, a_post, b_post).tolist()),
        prob_best=tuple(prob_best.tolist()),
        expected_loss=tuple(loss.tolist()),
    )
