"""A domain's health: one 0-100 score from quality, drift, latency and errors, and its SLA checks.

Each figure becomes a 0-100 sub-score by how much of its SLA margin it has used:

    sub-score = 100 - 50 * (distance from perfect) / (distance from perfect to the SLA limit), clipped to [0, 100]

so perfect scores 100, a figure exactly at its SLA limit scores 50 and one twice as far off scores 0.
Perfect is an AUC equal to the reference's (the champion's AUC on its test month; 1.0 without one, or
when the reference does not clear `min_auc` itself), no drifted columns, 0 ms and no errors.

The score is the weighted mean of the sub-scores that were measured (quality 0.4, drift 0.25,
latency 0.2, errors 0.15, renormalised over those present), so a window without labels is scored on
the rest rather than penalised. A score held to `min_health` is one more SLA check.

Status: "unknown" when nothing was measured; "unhealthy" when any SLA check fails; "degraded" when
all hold but the score is within DEGRADED_BAND points of `min_health` or some figure has used more
than DEGRADED_MARGIN_USED of its SLA margin; "healthy" otherwise.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from domainflow.config import SlaConfig

WEIGHTS = {"quality": 0.4, "drift": 0.25, "latency": 0.2, "errors": 0.15}
DEGRADED_BAND = 15.0
# A figure past 80 % of the way from perfect to its SLA limit: a sub-score below 100 - 50 * 0.8 = 60.
DEGRADED_MARGIN_USED = 0.8


@dataclass(frozen=True)
class SlaCheck:
    name: str
    target: str
    # None: not measured in this window.
    value: float | None
    ok: bool | None


@dataclass(frozen=True)
class Health:
    # 0-100; None when nothing was measured.
    score: float | None
    # The 0-100 sub-score of each component that went into the score.
    components: dict[str, float]
    sla: list[SlaCheck]
    status: str

    @property
    def failed_checks(self) -> list[str]:
        return [check.name for check in self.sla if check.ok is False]

    def to_dict(self) -> dict:
        """JSON-able, for the status page and MLflow's `log_dict`."""
        return {
            "score": self.score,
            "status": self.status,
            "components": dict(self.components),
            "failed_checks": self.failed_checks,
            "sla": [asdict(check) for check in self.sla],
        }


def health_score(
    *,
    auc: float | None,
    reference_auc: float | None,
    drift_share: float | None,
    p95_latency_ms: float | None,
    error_rate: float | None,
    sla: SlaConfig,
) -> Health:
    """Score and SLA checks of one monitoring window; a None or NaN figure was not measured and is left out."""
    auc = _figure("auc", auc, upper=1.0)
    reference_auc = _figure("reference_auc", reference_auc, upper=1.0)
    drift_share = _figure("drift_share", drift_share, upper=1.0)
    p95_latency_ms = _figure("p95_latency_ms", p95_latency_ms, upper=math.inf)
    error_rate = _figure("error_rate", error_rate, upper=1.0)

    components: dict[str, float] = {}
    if auc is not None:
        perfect = reference_auc if reference_auc is not None and reference_auc > sla.min_auc else 1.0
        components["quality"] = _sub_score(perfect - auc, perfect - sla.min_auc)
    if drift_share is not None:
        components["drift"] = _sub_score(drift_share, sla.max_drift_share)
    if p95_latency_ms is not None:
        components["latency"] = _sub_score(p95_latency_ms, sla.max_p95_latency_ms)
    if error_rate is not None:
        components["errors"] = _sub_score(error_rate, sla.max_error_rate)

    score = None
    if components:
        total_weight = sum(WEIGHTS[name] for name in components)
        score = sum(WEIGHTS[name] * sub for name, sub in components.items()) / total_weight

    checks = [
        _check("auc", auc, ">=", sla.min_auc),
        _check("drift_share", drift_share, "<=", sla.max_drift_share),
        _check("p95_latency_ms", p95_latency_ms, "<=", sla.max_p95_latency_ms),
        _check("error_rate", error_rate, "<=", sla.max_error_rate),
        _check("health", score, ">=", sla.min_health),
    ]
    return Health(score=score, components=components, sla=checks, status=_status(score, components, checks, sla))


def _figure(name: str, value: float | None, upper: float) -> float | None:
    if value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number or None, got {value!r}") from None
    if math.isnan(value):
        return None
    if not 0 <= value <= upper:
        raise ValueError(f"{name} must lie in [0, {upper:g}], got {value!r}")
    return value


def _sub_score(distance: float, limit_distance: float) -> float:
    """100 at perfect (distance 0), 50 at the SLA limit, 0 at twice the limit's distance."""
    if limit_distance <= 0:  # a limit of "none at all" (e.g. max_error_rate=0): any distance fails it
        return 100.0 if distance <= 0 else 0.0
    return min(100.0, max(0.0, 100.0 - 50.0 * distance / limit_distance))


def _check(name: str, value: float | None, comparison: str, target: float) -> SlaCheck:
    if value is None:
        return SlaCheck(name=name, target=f"{comparison} {target:g}", value=None, ok=None)
    ok = value >= target if comparison == ">=" else value <= target
    return SlaCheck(name=name, target=f"{comparison} {target:g}", value=value, ok=ok)


def _status(score: float | None, components: dict[str, float], checks: list[SlaCheck], sla: SlaConfig) -> str:
    if score is None:
        return "unknown"
    if any(check.ok is False for check in checks):
        return "unhealthy"
    near_limit = min(components.values()) < 100.0 - 50.0 * DEGRADED_MARGIN_USED
    if score < sla.min_health + DEGRADED_BAND or near_limit:
        return "degraded"
    return "healthy"
