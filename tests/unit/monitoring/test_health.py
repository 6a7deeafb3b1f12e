"""Health score and SLA checks: what a status page shows for a domain's window."""

from __future__ import annotations

import json
import math

import pytest

from domainflow.config import SlaConfig
from domainflow.monitoring.health import WEIGHTS, health_score

SLA = SlaConfig()  # min_auc 0.65, p95 250 ms, error rate 0.01, drift share 0.5, min health 60
GOOD = {"auc": 0.78, "reference_auc": 0.78, "drift_share": 0.0, "p95_latency_ms": 3.0, "error_rate": 0.0}


def score(**changes):
    return health_score(**{**GOOD, **changes}, sla=SLA)


def test_perfect_figures_score_near_100_and_are_healthy():
    health = score()

    assert health.score == pytest.approx(100, abs=0.5)
    assert health.status == "healthy"
    assert all(check.ok for check in health.sla)
    assert set(health.components) == set(WEIGHTS)


def test_figures_at_their_limits_score_50_and_pass_their_checks():
    health = score(auc=SLA.min_auc, drift_share=SLA.max_drift_share, p95_latency_ms=250, error_rate=0.01)

    assert health.components == pytest.approx({"quality": 50, "drift": 50, "latency": 50, "errors": 50})
    assert [check.ok for check in health.sla if check.name != "health"] == [True] * 4
    assert health.status == "unhealthy" and health.failed_checks == ["health"]


@pytest.mark.parametrize(
    ("figure", "value", "check"),
    [
        ("auc", 0.64, "auc"),
        ("drift_share", 0.6, "drift_share"),
        ("p95_latency_ms", 300.0, "p95_latency_ms"),
        ("error_rate", 0.02, "error_rate"),
    ],
)
def test_each_sla_breach_flips_its_check_and_the_status(figure, value, check):
    health = score(**{figure: value})

    checks = {each.name: each for each in health.sla}
    assert checks[check].ok is False and checks[check].value == pytest.approx(value)
    assert health.failed_checks[0] == check
    assert health.status == "unhealthy"
    assert health.score > SLA.min_health, "one breach fails its SLA even while the overall score is fine"


def test_a_figure_close_to_its_limit_degrades_before_it_breaches():
    health = score(p95_latency_ms=230.0)

    assert all(check.ok for check in health.sla)
    assert health.status == "degraded"


def test_a_score_just_above_min_health_is_degraded():
    # Every figure 64 % of the way to its limit: each sub-score and the score are 68, within 15 of min_health.
    health = score(auc=0.78 - 0.64 * 0.13, drift_share=0.32, p95_latency_ms=160.0, error_rate=0.0064)

    assert health.score == pytest.approx(68)
    assert all(check.ok for check in health.sla) and health.status == "degraded"


def test_a_low_score_alone_is_unhealthy():
    health = score(auc=0.66, drift_share=0.45, p95_latency_ms=240.0, error_rate=0.009)

    assert [check.name for check in health.sla if check.ok is False] == ["health"]
    assert health.score < SLA.min_health and health.status == "unhealthy"


def test_missing_measurements_renormalise_the_weights():
    no_labels = score(auc=None, reference_auc=None, drift_share=0.25)

    assert set(no_labels.components) == {"drift", "latency", "errors"}
    assert no_labels.components["drift"] == pytest.approx(75)
    expected = (0.25 * 75 + 0.2 * no_labels.components["latency"] + 0.15 * 100) / 0.6
    assert no_labels.score == pytest.approx(expected)
    assert {check.name: check.ok for check in no_labels.sla}["auc"] is None
    assert score(auc=float("nan"), reference_auc=None).components.keys() == no_labels.components.keys()


def test_nothing_measured_is_unknown():
    health = health_score(auc=None, reference_auc=0.8, drift_share=None, p95_latency_ms=None, error_rate=None, sla=SLA)

    assert health.score is None and health.components == {} and health.status == "unknown"
    assert all(check.ok is None for check in health.sla)


def test_quality_is_judged_against_the_reference_auc():
    assert score(auc=0.78, reference_auc=0.78).components["quality"] == pytest.approx(100)
    assert score(auc=0.80, reference_auc=0.78).components["quality"] == pytest.approx(100)
    # Halfway from the reference (0.75) to min_auc (0.65): 75.
    assert score(auc=0.70, reference_auc=0.75).components["quality"] == pytest.approx(75)
    # No reference, or one that does not clear min_auc itself: measured from an AUC of 1.
    assert score(auc=0.825, reference_auc=None).components["quality"] == pytest.approx(75)
    assert score(auc=0.825, reference_auc=0.6).components["quality"] == pytest.approx(75)


@pytest.mark.parametrize(
    ("figure", "values"),
    [
        ("auc", [0.95, 0.8, 0.7, 0.65, 0.6, 0.5, 0.3]),
        ("drift_share", [0.0, 0.1, 0.3, 0.5, 0.7, 1.0]),
        ("p95_latency_ms", [0.0, 10.0, 100.0, 250.0, 400.0, 1_000.0]),
        ("error_rate", [0.0, 0.001, 0.005, 0.01, 0.015, 0.5]),
    ],
)
def test_score_never_rises_as_a_figure_worsens(figure, values):
    scores = [score(**{figure: value}, reference_auc=0.8).score for value in values]

    assert all(later <= earlier for earlier, later in zip(scores, scores[1:], strict=False))
    assert scores[-1] < scores[0]


def test_a_zero_error_budget_fails_on_any_error():
    strict = SlaConfig(max_error_rate=0.0)

    assert health_score(**GOOD, sla=strict).components["errors"] == 100
    failing = health_score(**{**GOOD, "error_rate": 0.001}, sla=strict)
    assert failing.components["errors"] == 0 and "error_rate" in failing.failed_checks


@pytest.mark.parametrize(
    ("figure", "value"),
    [("auc", 1.2), ("drift_share", -0.1), ("p95_latency_ms", -1.0), ("error_rate", "high"), ("reference_auc", 2.0)],
)
def test_out_of_range_figures_raise_naming_them(figure, value):
    with pytest.raises(ValueError, match=figure):
        score(**{figure: value})


def test_to_dict_is_json_safe():
    payload = json.loads(json.dumps(score(error_rate=0.02).to_dict()))

    assert payload["status"] == "unhealthy" and payload["failed_checks"] == ["error_rate"]
    assert {"name", "target", "value", "ok"} == set(payload["sla"][0])
    assert payload["sla"][0]["target"] == ">= 0.65"
    assert not math.isnan(payload["score"])
