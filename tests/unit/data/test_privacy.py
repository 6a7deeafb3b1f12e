from __future__ import annotations

import numpy as np
import pytest

from domainflow.data.privacy import (
    PrivacyBudgetExceeded,
    PrivacyLedger,
    laplace_noise,
    publish_statistics,
    release_count,
    release_rate,
)


def test_noise_scale_matches_epsilon():
    epsilon = 0.5
    rng = np.random.default_rng(11)
    true = 5_000
    # One ledger per release: each release is a separate run's statistic.
    ledgers = [PrivacyLedger(budget=epsilon) for _ in range(20_000)]
    released = np.array([release_count(true, "n", epsilon, ledger, rng) for ledger in ledgers])
    errors = released - true
    assert np.mean(np.abs(errors)) == pytest.approx(1 / epsilon, rel=0.05)
    assert np.std(errors) == pytest.approx(np.sqrt(2) / epsilon, rel=0.05)
    assert abs(np.mean(errors)) < 0.1
    assert all(ledger.spent == epsilon for ledger in ledgers)


def test_laplace_noise_is_seeded():
    first = laplace_noise(2.0, np.random.default_rng(5), size=10)
    again = laplace_noise(2.0, np.random.default_rng(5), size=10)
    np.testing.assert_array_equal(first, again)


def test_counts_are_clipped_at_zero():
    rng = np.random.default_rng(0)
    ledger = PrivacyLedger(budget=1_000.0)
    released = [release_count(0, "zero", 0.5, ledger, rng) for _ in range(200)]
    assert min(released) == 0.0
    assert all(value >= 0 for value in released)


def test_ten_releases_of_a_tenth_fit_a_budget_of_one():
    ledger = PrivacyLedger(budget=1.0)
    for i in range(10):
        ledger.spend(f"s{i}", 0.1)
    assert ledger.spent == pytest.approx(1.0)
    with pytest.raises(PrivacyBudgetExceeded, match="'s10'"):
        ledger.spend("s10", 0.1)
    assert len(ledger.entries) == 10


def test_ledger_refuses_overspend_and_keeps_state():
    ledger = PrivacyLedger(budget=0.5)
    ledger.spend("a", 0.3)
    with pytest.raises(PrivacyBudgetExceeded, match="budget_per_run"):
        ledger.spend("b", 0.3)
    assert ledger.entries == [("a", 0.3)]
    assert ledger.remaining == pytest.approx(0.2)


def test_release_count_spends_before_releasing():
    ledger = PrivacyLedger(budget=0.1)
    rng = np.random.default_rng(0)
    release_count(10, "a", 0.1, ledger, rng)
    with pytest.raises(PrivacyBudgetExceeded):
        release_count(10, "b", 0.1, ledger, rng)


@pytest.mark.parametrize("epsilon", [0.0, -1.0])
def test_non_positive_epsilon_rejected(epsilon):
    with pytest.raises(ValueError, match="positive"):
        PrivacyLedger(budget=1.0).spend("x", epsilon)


def test_release_rate_splits_epsilon_and_stays_in_unit_interval():
    ledger = PrivacyLedger(budget=1.0)
    rate = release_rate(30, 100, "label_rate", 0.4, ledger, np.random.default_rng(1))
    assert 0.0 <= rate <= 1.0
    assert [label for label, _ in ledger.entries] == ["label_rate:numerator", "label_rate:denominator"]
    assert [eps for _, eps in ledger.entries] == pytest.approx([0.2, 0.2])


def test_release_rate_is_close_for_large_counts():
    ledger = PrivacyLedger(budget=10.0)
    rate = release_rate(30_000, 100_000, "r", 1.0, ledger, np.random.default_rng(2))
    assert rate == pytest.approx(0.3, abs=0.01)


def test_publish_statistics_names_and_spends():
    counts = {"rows_in": 1_000, "rows_kept": 990, "train_rows": 600}
    published, ledger = publish_statistics(counts, {"label_rate": (150, 600)}, epsilon=0.1, budget=1.0, seed=3)
    assert set(published) == {"dp_rows_in", "dp_rows_kept", "dp_train_rows", "dp_label_rate"}
    assert ledger.spent == pytest.approx(0.4)
    assert all(published[f"dp_{name}"] != value for name, value in counts.items())
    assert all(abs(published[f"dp_{name}"] - value) < 200 for name, value in counts.items())
    assert 0 <= published["dp_label_rate"] <= 1


def test_publish_statistics_is_reproducible_with_a_seed():
    counts = {"a": 10, "b": 20}
    first, _ = publish_statistics(counts, {}, epsilon=0.5, budget=1.0, seed=9)
    again, _ = publish_statistics(counts, {}, epsilon=0.5, budget=1.0, seed=9)
    other, _ = publish_statistics(counts, {}, epsilon=0.5, budget=1.0, seed=10)
    assert first == again
    assert first != other


def test_publish_statistics_never_returns_all_raw_counts():
    counts = {f"c{i}": 100 * i + 7 for i in range(5)}
    for seed in range(20):
        published, _ = publish_statistics(counts, {}, epsilon=0.2, budget=1.0, seed=seed)
        assert any(published[f"dp_{k}"] != v for k, v in counts.items())


def test_publish_statistics_refuses_up_front():
    counts = {f"c{i}": i for i in range(6)}
    with pytest.raises(PrivacyBudgetExceeded, match="budget_per_run=0.5"):
        publish_statistics(counts, {"r": (1, 2)}, epsilon=0.1, budget=0.5, seed=0)


def test_publish_statistics_exact_fit_of_ten_tenths():
    counts = {f"c{i}": i for i in range(9)}
    published, ledger = publish_statistics(counts, {"r": (1, 2)}, epsilon=0.1, budget=1.0, seed=0)
    assert len(published) == 10
    # A rate spends its epsilon in two halves.
    assert len(ledger.entries) == 11
    assert ledger.spent == pytest.approx(1.0)
