"""Differential privacy for statistics that leave the process.

Counts and rates published to MLflow or reports go through the Laplace
mechanism; a ledger per run sums the epsilon spent (sequential composition)
and refuses a release that would overspend. Raw counts stay in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


class PrivacyBudgetExceeded(RuntimeError):
    """A release would spend more epsilon than the run's budget allows."""


@dataclass
class PrivacyLedger:
    budget: float
    entries: list[tuple[str, float]] = field(default_factory=list)

    @property
    def spent(self) -> float:
        return sum(epsilon for _, epsilon in self.entries)

    @property
    def remaining(self) -> float:
        return self.budget - self.spent

    def spend(self, label: str, epsilon: float) -> None:
        if epsilon <= 0:
            raise ValueError(f"epsilon must be positive, got {epsilon}")
        # A tolerance keeps ten releases of 0.1 within a budget of 1.0.
        if self.spent + epsilon > self.budget + 1e-9:
            raise PrivacyBudgetExceeded(
                f"releasing {label!r} needs epsilon {epsilon:g} but only {self.remaining:g} of "
                f"{self.budget:g} is left; raise privacy.budget_per_run or publish fewer statistics"
            )
        self.entries.append((label, epsilon))


def laplace_noise(scale: float, rng: np.random.Generator, size: int | None = None) -> float | np.ndarray:
    return rng.laplace(loc=0.0, scale=scale, size=size)


def release_count(
    true_count: int, label: str, epsilon: float, ledger: PrivacyLedger, rng: np.random.Generator
) -> float:
    """A count (sensitivity 1) with Laplace(1/epsilon) noise, clipped at zero."""
    ledger.spend(label, epsilon)
    return max(0.0, float(true_count + laplace_noise(1.0 / epsilon, rng)))


def release_rate(
    positives: int, total: int, label: str, epsilon: float, ledger: PrivacyLedger, rng: np.random.Generator
) -> float:
    """A proportion from two noisy counts, each given half of `epsilon`."""
    noisy_positives = release_count(positives, f"{label}:numerator", epsilon / 2, ledger, rng)
    noisy_total = release_count(total, f"{label}:denominator", epsilon / 2, ledger, rng)
    return float(np.clip(noisy_positives / max(noisy_total, 1.0), 0.0, 1.0))


def publish_statistics(
    counts: dict[str, int],
    rates: dict[str, tuple[int, int]],
    epsilon: float,
    budget: float,
    seed: int | None = None,
) -> tuple[dict[str, float], PrivacyLedger]:
    """Noisy versions of `counts` and `rates` ((positives, total) pairs), under one run's budget.

    Raises PrivacyBudgetExceeded before releasing anything if the whole set
    does not fit: a partial release would waste budget for nothing.
    """
    needed = epsilon * (len(counts) + len(rates))
    if needed > budget + 1e-9:
        raise PrivacyBudgetExceeded(
            f"publishing {len(counts) + len(rates)} statistics at epsilon {epsilon:g} each needs "
            f"{needed:g}, above privacy.budget_per_run={budget:g}"
        )
    ledger = PrivacyLedger(budget)
    rng = np.random.default_rng(seed)
    published = {f"dp_{name}": release_count(value, name, epsilon, ledger, rng) for name, value in counts.items()}
    for name, (positives, total) in rates.items():
        published[f"dp_{name}"] = release_rate(positives, total, name, epsilon, ledger, rng)
    return published, ledger
