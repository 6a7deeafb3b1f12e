"""The events domainflow emits, by name, with the domain as their resource.

Prefect deployment triggers (prefect.yaml) match these names and read the domain from
the resource's `domainflow.domain` label; the figures ride in the payload.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DRIFT_DETECTED = "domainflow.drift.detected"
QUALITY_DEGRADED = "domainflow.quality.degraded"
FORECAST_BREACH = "domainflow.forecast.breach"
# Labels have run monitoring.retrain_after_days past what the champion was trained and tested on.
MODEL_STALE = "domainflow.model.stale"
CHALLENGER_SET = "domainflow.registry.challenger_set"
# Alerts for people (a webhook notification, see flows/alerts.py); they retrain nothing.
SLA_BREACHED = "domainflow.sla.breached"
HEALTH_DEGRADED = "domainflow.health.degraded"
# The events that start a retraining run.
RETRAINING_EVENTS = (DRIFT_DETECTED, QUALITY_DEGRADED, FORECAST_BREACH, MODEL_STALE)
ALERT_EVENTS = (SLA_BREACHED, HEALTH_DEGRADED)
EVENTS = (*RETRAINING_EVENTS, CHALLENGER_SET, *ALERT_EVENTS)


def domain_resource(pipeline: str, domain: str) -> dict[str, str]:
    return {
        "prefect.resource.id": f"domainflow.domain.{pipeline}.{domain}",
        "prefect.resource.name": domain,
        "domainflow.domain": domain,
        "domainflow.pipeline": pipeline,
    }


@dataclass(frozen=True)
class DomainEvent:
    name: str
    pipeline: str
    domain: str
    payload: dict = field(default_factory=dict)

    @property
    def resource(self) -> dict[str, str]:
        return domain_resource(self.pipeline, self.domain)

    def json_payload(self) -> dict:
        """The payload as JSON takes it: string keys, lists for tuples, null for NaN."""
        return _json_safe(self.payload)


def _json_safe(value):
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and value != value:  # NaN is not JSON
        return None
    return value
