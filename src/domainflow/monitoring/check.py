"""One domain's monitoring verdict: drift, live quality, forecasts and health, and the events they raise.

The verdicts come from the fast drift path (the same per-column tests as Evidently's
DataDriftPreset, vectorized) at thresholds calibrated on the reference (thresholds.py), and
Evidently's classification tests; the Evidently report holds the same figures for a person to read.

Drift alone starts no retrain. DRIFT_DETECTED, the event the `retrain` deployment listens for,
needs both: the drifted features' share of the model's importance beyond its calibrated null
(and at least monitoring.min_drift_importance), and evidence that the model is or will be worse:
its labelled quality failed, or a quality forecast (log loss, AUC) warns of a breach.
"""

from __future__ import annotations

import math
import time
from collections.abc import Collection, Iterable
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from domainflow.config import PipelineConfig
from domainflow.pii import mask_columns
from domainflow.store.checks import CheckRecord

from .drift import ColumnDrift, DriftResult, DriftThresholds, detect_drift
from .events import (
    DRIFT_DETECTED,
    FORECAST_BREACH,
    HEALTH_DEGRADED,
    MODEL_STALE,
    QUALITY_DEGRADED,
    SLA_BREACHED,
    DomainEvent,
)
from .forecast import Forecast, forecast_breach
from .health import Health, health_score
from .reference import Reference
from .reports import MonitoringReport, QualityCheck, build_report
from .thresholds import MIN_DAY_ROWS, DriftCalibration, Thresholds, calibrate_drift
from .window import AT, LogWindow, day_quality, stream_log_days

__all__ = ["MIN_DAY_ROWS", "DomainCheck", "WeightedDrift", "check_domain", "daily_series", "feature_drift"]
# A feature null in at least this share of the reference rows is not "drifted" for a window without values.
MOSTLY_NULL = 0.5
DAILY_COLUMNS = ["predictions", "labelled", "log_loss", "auc", "drift_share", "drift_score"]
# The forecasts that say the model will be worse (the drift forecast says only that the data will move).
QUALITY_METRICS = ("log_loss", "auc")


@dataclass(frozen=True)
class WeightedDrift:
    """The drifted features' share of the model's importance, against its calibrated (or fixed) threshold."""

    score: float  # Thresholds.score: importance x excess over the null (calibrated), or the drifted share (fixed)
    threshold: float
    threshold_kind: str  # "calibrated" | "fixed"
    null_windows: int
    alarm: bool  # beyond the threshold, and carrying at least monitoring.min_drift_importance
    # The drifted columns' importance shares, largest first.
    contributions: dict[str, float] = field(default_factory=dict)
    note: str = ""

    @classmethod
    def of(cls, drift: DriftResult, thresholds: Thresholds, weights, min_importance: float) -> WeightedDrift:
        """Alarm: the score beyond its threshold, and the drifted columns carry at least `min_importance`."""
        score = thresholds.score(drift.columns, weights)
        shares = sorted(((c, float(weights.get(c, 0.0))) for c in drift.drifted_columns()), key=lambda cw: -cw[1])
        material = sum(w for _, w in shares) >= min_importance
        return cls(score=score, threshold=thresholds.score_threshold, threshold_kind=thresholds.kind,
                   null_windows=thresholds.null_windows, alarm=thresholds.alarms(score) and material,
                   contributions=dict(shares), note=thresholds.note)  # fmt: skip

    def to_dict(self) -> dict:
        return {"score": self.score, "threshold": self.threshold, "threshold_kind": self.threshold_kind,
                "null_windows": self.null_windows, "alarm": self.alarm, "contributions": self.contributions,
                "note": self.note}  # fmt: skip


@dataclass(frozen=True)
class DomainCheck:
    domain: str
    version: str
    # "ok" | "drift" | "degraded" | "insufficient" (too few predictions to judge)
    status: str
    window_rows: int
    labelled_rows: int
    drift: DriftResult | None = None
    weighted_drift: WeightedDrift | None = None
    daily_thresholds: dict | None = None  # the daily series' threshold kind, null windows and score threshold
    prediction_drift: ColumnDrift | None = None
    quality: QualityCheck | None = None
    daily: pd.DataFrame = field(default_factory=pd.DataFrame)
    forecasts: list[Forecast] = field(default_factory=list)
    health: Health | None = None
    report_html: str | None = None
    events: list[DomainEvent] = field(default_factory=list)
    reference_data_matches: bool = True
    note: str = ""

    def figures(self) -> dict[str, float]:
        """The check's numbers, flat: MLflow metrics and the events' payload."""
        figures = {"window_rows": float(self.window_rows), "labelled_rows": float(self.labelled_rows)}
        if self.drift is not None:
            figures["drift_share"] = self.drift.share_drifted
        if self.weighted_drift is not None:
            figures |= {
                "drift_score": self.weighted_drift.score,
                "drift_score_threshold": self.weighted_drift.threshold,
            }
        if self.prediction_drift is not None:
            figures["prediction_drift_score"] = self.prediction_drift.score
        if self.quality is not None:
            figures |= {f"window_{k}": getattr(self.quality, k) for k in ("auc", "log_loss")}
            figures |= {k: getattr(self.quality, k) for k in ("reference_auc", "reference_log_loss")}
        if self.health is not None and self.health.score is not None:
            figures["health"] = self.health.score
        return {k: float(v) for k, v in figures.items() if v is not None and math.isfinite(v)}

    def to_dict(self) -> dict:
        return {
            "domain": self.domain, "version": self.version, "status": self.status, "note": self.note,
            "window_rows": self.window_rows, "labelled_rows": self.labelled_rows,
            "drift": self.drift.to_dict() if self.drift else None,
            "drifted_columns": self.drift.drifted_columns() if self.drift else [],
            "weighted_drift": self.weighted_drift.to_dict() if self.weighted_drift else None,
            "daily_thresholds": self.daily_thresholds,
            "quality": None if self.quality is None else {
                "passed": self.quality.passed, "auc": self.quality.auc, "log_loss": self.quality.log_loss,
                "reference_auc": self.quality.reference_auc, "reference_log_loss": self.quality.reference_log_loss,
                "tests": self.quality.tests,
            },
            "forecasts": [f.to_dict() for f in self.forecasts],
            "health": self.health.to_dict() if self.health else None,
            "events": [e.name for e in self.events],
            "reference_data_matches": self.reference_data_matches,
        }  # fmt: skip

    def to_record(self, report_uri: str | None, at: float | None = None) -> CheckRecord:
        """The row the state database keeps of this check (domainflow.store.checks)."""
        health = self.health.score if self.health is not None else None
        return CheckRecord(domain=self.domain, version=self.version, status=self.status, health=health,
                           figures=self.figures(), summary=self.to_dict(), report_uri=report_uri,
                           at=time.time() if at is None else at)  # fmt: skip


def check_domain(
    reference: Reference,
    window: LogWindow,
    daily: pd.DataFrame,
    config: PipelineConfig,
    calibration: DriftCalibration | None = None,
) -> DomainCheck:
    """Judge the latest `monitoring.window_rows` of `window`, and forecast the `daily_series` of its history.

    `calibration` (calibrate_drift for this window's length) is computed here when not given.
    """
    monitoring = config.monitoring
    window = window.latest(monitoring.window_rows)
    base = dict(domain=reference.domain, version=reference.version, window_rows=window.rows,
                labelled_rows=len(window.labelled), reference_data_matches=reference.data_matches)  # fmt: skip
    if window.rows < monitoring.min_window_rows:
        note = f"{window.rows} predictions in the window; monitoring.min_window_rows is {monitoring.min_window_rows}"
        return DomainCheck(status="insufficient", note=note, **base)

    if calibration is None:
        calibration = calibrate_drift(reference, config, window_rows=window.rows)
    drift = feature_drift(calibration.reference, window.frame, config, thresholds=calibration.window.columns)
    weighted = WeightedDrift.of(drift, calibration.window, calibration.weights, monitoring.min_drift_importance)
    report = evidently_report(reference, window, config, calibration)
    forecasts = forecast_series(daily, reference, config, calibration)
    quality = report.quality
    health = health_score(
        auc=quality.auc if quality else None, reference_auc=reference.auc, drift_share=drift.share_drifted,
        p95_latency_ms=window.p95_latency_ms, error_rate=window.error_rate, sla=monitoring.sla,
    )  # fmt: skip

    figures = {"version": reference.version, "window_rows": window.rows}
    quality_failed = quality is not None and not quality.passed
    warnings = [f for f in forecasts if f.early_warning and f.metric in QUALITY_METRICS]
    events = []
    if weighted.alarm and (quality_failed or warnings):
        events.append(DomainEvent(DRIFT_DETECTED, config.name, reference.domain, {
            **figures, "drift_score": weighted.score, "drift_score_threshold": weighted.threshold,
            "threshold_kind": weighted.threshold_kind, "null_windows": weighted.null_windows,
            "drift_contributions": weighted.contributions, "drift_share": drift.share_drifted,
            "drifted_columns": drift.drifted_columns(), "quality_failed": quality_failed,
            **_quality_figures(quality), "forecast_warnings": [f.to_dict() for f in warnings]}))  # fmt: skip
    if quality_failed:
        failed = [t["name"] for t in quality.tests if t["status"] != "SUCCESS"]
        events.append(DomainEvent(QUALITY_DEGRADED, config.name, reference.domain,
                                  {**figures, **_quality_figures(quality), "failed_tests": failed}))  # fmt: skip
    for forecast in warnings:
        events.append(DomainEvent(FORECAST_BREACH, config.name, reference.domain, {**figures, **forecast.to_dict()}))
    stale, after = unseen_labels(reference, window), monitoring.retrain_after_days
    if stale is not None and after is not None and stale["days"] >= after:
        events.append(DomainEvent(MODEL_STALE, config.name, reference.domain,
                                  {**figures, **stale, "retrain_after_days": after}))  # fmt: skip
    status = "degraded" if quality_failed else "drift" if weighted.alarm else "ok"
    note = "" if not weighted.alarm or events else "drift of the features the model uses, no sign yet of worse quality"
    events += alert_events(health, figures, config.name, reference.domain)
    daily_thresholds = calibration.daily.to_dict()
    return DomainCheck(
        status=status, drift=drift, weighted_drift=weighted, daily_thresholds=daily_thresholds,
        prediction_drift=report.prediction_drift, quality=quality, daily=daily, forecasts=forecasts, health=health,
        report_html=report.html, events=events, note=note, **base,
    )  # fmt: skip


def unseen_labels(reference: Reference, window: LogWindow) -> dict | None:
    """How far the window's labels run past the champion's test month: {"days", "labelled_until", "tested_until"}.

    None when either end is unknown (no labels yet, or a reference without event times).
    """
    labelled = window.labelled
    if labelled.empty or reference.timestamp is None or reference.timestamp not in reference.test.columns:
        return None
    tested = pd.Timestamp(reference.test[reference.timestamp].max())
    latest = pd.Timestamp(labelled[AT].max())
    if pd.isna(tested) or pd.isna(latest):
        return None
    return {"days": (latest - tested) / pd.Timedelta(days=1), "labelled_until": f"{latest:%Y-%m-%d}",
            "tested_until": f"{tested:%Y-%m-%d}"}  # fmt: skip


def alert_events(health: Health, figures: dict, pipeline: str, domain: str) -> list[DomainEvent]:
    """For people, not for retraining: an SLA check failed, or the health score is degraded or worse."""
    events = []
    if health.failed_checks:
        failed = [asdict(check) for check in health.sla if check.ok is False]
        breach = {**figures, "failed_checks": health.failed_checks, "checks": failed, "health": health.score}
        events.append(DomainEvent(SLA_BREACHED, pipeline, domain, breach))
    if health.status in ("degraded", "unhealthy"):
        events.append(DomainEvent(HEALTH_DEGRADED, pipeline, domain, {**figures, "health": health.score,
                                  "status": health.status, "components": dict(health.components)}))  # fmt: skip
    return events


def _quality_figures(quality: QualityCheck | None) -> dict:
    if quality is None:
        return {}
    return {"auc": quality.auc, "log_loss": quality.log_loss, "reference_auc": quality.reference_auc,
            "reference_log_loss": quality.reference_log_loss}  # fmt: skip


def feature_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    config: PipelineConfig,
    skip: Collection[str] = (),
    *,
    thresholds: DriftThresholds | None = None,
) -> DriftResult:
    """The fast path over the features but `skip`; a feature with values in the reference and none now may drift.

    A feature that stops arriving is the plainest drift there is, and no statistical test takes an
    empty sample, so it is recorded with the method "all_missing" instead of tested; but only when
    the reference mostly has values for it: a column null in most reference rows (MOSTLY_NULL) comes
    in whole null stretches, and a window inside one is no news.
    """
    data, monitoring = config.data, config.monitoring
    features = [c for c in data.features if c not in skip]
    gone = [c for c in features if current[c].notna().sum() == 0 and reference[c].notna().mean() > 1 - MOSTLY_NULL]
    numeric, categorical = _with_values(reference, current, config, skip)
    thresholds = drift_thresholds(config) if thresholds is None else thresholds
    result = detect_drift(reference, current, numeric, categorical, drift_share=monitoring.drift_share,
                          thresholds=thresholds, max_exact_rows=monitoring.max_exact_rows)  # fmt: skip
    if not gone:
        return result
    missing = [ColumnDrift(c, "numeric" if c in data.numeric_features else "categorical", "all_missing", 1.0, 1.0, True)
               for c in gone]  # fmt: skip
    columns = [*result.columns, *missing]
    share = sum(c.drifted for c in columns) / len(columns)
    return replace(result, columns=columns, share_drifted=share, dataset_drift=share >= result.drift_share)


def drift_thresholds(config: PipelineConfig) -> DriftThresholds:
    return DriftThresholds(p_value=config.monitoring.p_value_threshold, distance=config.monitoring.distance_threshold)


def _with_values(reference: pd.DataFrame, current: pd.DataFrame, config: PipelineConfig, skip: Collection[str] = ()):
    """The numeric and the categorical features but `skip` with values in both frames (the ones a test can take)."""

    def usable(columns):
        return [c for c in columns if c not in skip and reference[c].notna().any() and current[c].notna().any()]

    return usable(config.data.numeric_features), usable(config.data.categorical_features)


def daily_series(
    reference: Reference,
    days: Iterable[tuple[pd.Timestamp, LogWindow]],
    config: PipelineConfig,
    calibration: DriftCalibration | None = None,
) -> pd.DataFrame:
    """Per event day: predictions, labelled, log loss, AUC, the share of drifted features and their weighted score.

    A feature drifts on a day when its statistic lies beyond the null of whole reference days
    (`calibration.daily`). `days` come one at a time (`stream_log_days` from the log, `days_in`
    from a frame), and each is dropped once its figures are taken, so a long history never sits
    in memory whole.
    """
    if calibration is None:
        calibration = calibrate_drift(reference, config, window_rows=config.monitoring.window_rows)
    thresholds = calibration.daily.columns
    figures = []
    for day, rows in days:
        # A day's AUC and log loss on fewer labels than a window needs are too noisy to forecast from.
        quality = day_quality(rows, min_labelled=config.monitoring.min_labelled)
        drifted, score = np.nan, np.nan
        if rows.rows >= MIN_DAY_ROWS:
            # A column with one value all day (a calendar column, by construction) against the reference's
            # many always "drifts", and says nothing of the day; the window check, across days, still tests it.
            fixed = [c for c in config.data.features if rows.frame[c].nunique(dropna=True) == 1]
            if len(fixed) < len(config.data.features):
                drift = feature_drift(calibration.reference, rows.frame, config, skip=fixed, thresholds=thresholds)
                drifted = float(drift.share_drifted)
                score = calibration.daily.score(drift.columns, calibration.weights)
        figures.append({"day": day, **quality, "drift_share": drifted, "drift_score": score})
    if not figures:
        return pd.DataFrame(columns=DAILY_COLUMNS)
    return pd.DataFrame(figures).set_index("day")


def build_daily_series(
    engine: Engine, reference: Reference, config: PipelineConfig, calibration: DriftCalibration | None = None
) -> pd.DataFrame:
    """The reference's version's daily series over its logged history, streamed from the log one day at a time."""
    days = stream_log_days(engine, reference.domain, config.data.features, version=reference.version,
                           history_days=config.monitoring.history_days)  # fmt: skip
    return daily_series(reference, days, config, calibration)


def forecast_series(
    daily: pd.DataFrame, reference: Reference, config: PipelineConfig, calibration: DriftCalibration | None = None
) -> list[Forecast]:
    """Forecasts of the daily weighted drift score, log loss and AUC against the thresholds the checks use.

    The drift forecast is reported; only the quality forecasts count as evidence for a retrain.
    """
    if daily.empty:
        return []
    monitoring = config.monitoring
    drift_threshold = monitoring.drift_share if calibration is None else calibration.daily.score_threshold
    wanted = [
        ("drift_score" if "drift_score" in daily else "drift_share", drift_threshold, "above"),
        ("log_loss", reference.log_loss + monitoring.max_log_loss_increase, "above"),
        ("auc", reference.auc - monitoring.max_auc_drop, "below"),
    ]
    forecasts = []
    for metric, threshold, direction in wanted:
        forecast = forecast_breach(daily[metric], metric=metric, threshold=threshold, direction=direction,
                                   config=monitoring.forecast)  # fmt: skip
        if forecast is not None:
            forecasts.append(forecast)
    return forecasts


def evidently_report(
    reference: Reference, window: LogWindow, config: PipelineConfig, calibration: DriftCalibration | None = None
) -> MonitoringReport:
    """Evidently's drift and classification report of `window` against the reference, with the quality tests.

    With a calibration, the drift is against its compare half at its calibrated per-column thresholds,
    the same test the check made.
    """
    monitoring = config.monitoring
    drift_reference = reference.train if calibration is None else calibration.reference
    thresholds = drift_thresholds(config) if calibration is None else calibration.window.columns
    # A feature allowed to hold personal data is shown in the report by its kinds ("<email>"), never its values.
    personal = config.data.allow_pii_columns
    drift_reference, current = mask_columns(drift_reference, personal), mask_columns(window.frame, personal)
    return build_report(
        drift_reference, current, *_with_values(drift_reference, current, config),
        quality_reference=mask_columns(reference.test, personal), drift_share=monitoring.drift_share,
        thresholds=thresholds, min_labelled=monitoring.min_labelled,
        max_auc_drop=monitoring.max_auc_drop, max_log_loss_increase=monitoring.max_log_loss_increase,
    )  # fmt: skip
