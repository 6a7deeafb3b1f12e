"""A monitoring check as the flow's result and as the Prefect artifact a person reads."""

from __future__ import annotations

from pydantic import BaseModel

from .check import DomainCheck
from .events import RETRAINING_EVENTS


class MonitoringOutcome(BaseModel):
    """What one domain's monitoring run found and did."""

    domain: str
    status: str  # ok | drift | degraded | insufficient | not_served
    version: str | None = None
    health: float | None = None
    health_status: str | None = None
    drift_share: float | None = None
    drifted_columns: list[str] = []
    # The drifted features' share of the model's importance, its threshold and how that was set.
    drift_score: float | None = None
    drift_score_threshold: float | None = None
    threshold_kind: str | None = None  # "calibrated" on the reference, or "fixed" (the fallback)
    quality_passed: bool | None = None
    auc: float | None = None
    reference_auc: float | None = None
    early_warnings: list[str] = []
    events: list[str] = []
    event_ids: dict[str, str] = {}  # each emitted event's Prefect id, by name
    report_uri: str | None = None
    canary_rolled_back: str | None = None  # the canary version the live quality gate rolled back
    champion_reverted: str | None = None  # the promoted version the post-promotion watch reverted
    note: str = ""
    # The daily series the forecasts were fitted to: [{"day": "2013-09-01", "log_loss": .., "auc": .., ...}].
    daily: list[dict] = []

    @property
    def retraining_event(self) -> str | None:
        """The first event this check raised that starts a retrain (the `retrain` deployment's trigger)."""
        return next((event for event in self.events if event in RETRAINING_EVENTS), None)

    @property
    def retraining_event_id(self) -> str | None:
        """The Prefect id of `retraining_event`, when it was emitted: the retrain's audit row names it."""
        return self.event_ids.get(self.retraining_event) if self.retraining_event else None

    def headline(self) -> str:
        if self.status in ("not_served", "failed", "insufficient"):
            return f"monitoring: {self.status.replace('_', ' ')} ({self.note})"
        found = [f"drift in {len(self.drifted_columns)} columns ({self.drift_share:.0%})" if self.drift_share else None,
                 None if self.quality_passed is not False else f"quality degraded (AUC {self.auc:.3f} vs "
                 f"{self.reference_auc:.3f})", *self.early_warnings]  # fmt: skip
        health = f", health {self.health:.0f}" if self.health is not None else ""
        if self.champion_reverted:
            health += f" (reverted v{self.champion_reverted}: worse than the version it replaced)"
        return f"monitored v{self.version}: {'; '.join(f for f in found if f) or 'no drift, quality holds'}{health}"

    @classmethod
    def from_result(cls, domain: str, result: MonitoringOutcome | BaseException) -> MonitoringOutcome:
        """A monitoring run's outcome, or a failed one naming its error (one failing domain spares the rest)."""
        if isinstance(result, BaseException):
            return cls(domain=domain, status="failed", note=f"{type(result).__name__}: {result}")
        return result

    @classmethod
    def from_check(
        cls,
        check: DomainCheck,
        report_uri: str | None,
        canary_rolled_back: str | None = None,
        event_ids: dict[str, str] | None = None,
        champion_reverted: str | None = None,
    ) -> MonitoringOutcome:
        quality, health, weighted = check.quality, check.health, check.weighted_drift
        return cls(
            domain=check.domain, status=check.status, version=check.version,
            health=health.score if health else None, health_status=health.status if health else None,
            drift_share=check.drift.share_drifted if check.drift else None,
            drifted_columns=check.drift.drifted_columns() if check.drift else [],
            drift_score=weighted.score if weighted else None,
            drift_score_threshold=weighted.threshold if weighted else None,
            threshold_kind=weighted.threshold_kind if weighted else None,
            quality_passed=quality.passed if quality else None, auc=quality.auc if quality else None,
            reference_auc=quality.reference_auc if quality else None,
            early_warnings=[f"{f.metric} crosses {f.threshold:.3g} on {f.breach_date}" for f in check.forecasts
                            if f.early_warning],
            events=[e.name for e in check.events], event_ids=dict(event_ids or {}), report_uri=report_uri,
            canary_rolled_back=canary_rolled_back, champion_reverted=champion_reverted,
            note=check.note,
            daily=_records(check.daily),
        )  # fmt: skip


def _records(daily) -> list[dict]:
    if daily is None or daily.empty:
        return []
    frame = daily.reset_index().rename(columns={"index": "day"})
    frame["day"] = frame["day"].dt.strftime("%Y-%m-%d")
    return [{k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}
            for row in frame.to_dict("records")]  # fmt: skip


def check_markdown(check: DomainCheck, report_uri: str | None) -> str:
    lines = [f"# Monitoring {check.domain} v{check.version}: {check.status}", ""]
    if check.note:
        lines += [check.note, ""]
    lines += [f"- window: {check.window_rows:,} predictions, {check.labelled_rows:,} labelled"]
    if check.drift is not None:
        drifted = ", ".join(check.drift.drifted_columns()) or "none"
        lines += [f"- drift: {check.drift.share_drifted:.0%} of feature columns drifted ({drifted})"]
    if check.weighted_drift is not None:
        w = check.weighted_drift
        lines += [f"- importance-weighted drift: {w.score:.3g} against {w.threshold_kind} threshold {w.threshold:.3g}"
                  f"{f' ({w.null_windows} null windows)' if w.null_windows else f' ({w.note})'}: "
                  f"{'alarm' if w.alarm else 'no alarm'}"]  # fmt: skip
    if check.prediction_drift is not None:
        p = check.prediction_drift
        lines += [f"- prediction drift: {p.method} {p.score:.4g} (threshold {p.threshold:g}, drifted={p.drifted})"]
    if check.quality is not None:
        q = check.quality
        lines += [f"- quality: AUC {q.auc:.4f} (reference {q.reference_auc:.4f}), log loss {q.log_loss:.4f} "
                  f"(reference {q.reference_log_loss:.4f}): {'passed' if q.passed else 'FAILED'}"]  # fmt: skip
        lines += [f"  - {t['name']}: {t['status']}" for t in q.tests]
    for f in check.forecasts:
        when = f"breach forecast on {f.breach_date}" if f.breach_date else "no breach forecast"
        lines += [f"- forecast {f.metric}: last {f.last_value:.4g} on {f.last_date}, threshold {f.threshold:.4g}: "
                  f"{when}{' (already breached)' if f.breach_observed else ''}"]  # fmt: skip
    if check.health is not None and check.health.score is not None:
        failing = [s.name for s in check.health.sla if s.ok is False]
        lines += [f"- health: {check.health.score:.0f}/100 ({check.health.status}); SLA failing: "
                  f"{', '.join(failing) or 'none'}"]  # fmt: skip
    lines += [f"- events: {', '.join(e.name for e in check.events) or 'none'}"]
    if not check.reference_data_matches:
        lines += ["- the source changed since the version was trained: the reference is the source as it is now"]
    if report_uri:
        lines += ["", f"[Evidently report]({report_uri})"]
    return "\n".join(lines)
