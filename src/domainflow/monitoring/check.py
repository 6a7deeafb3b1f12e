"""One domain's monitoring verdict: drift, live quality, forecasts and health, and the events they raise.

The verdicts come from the fast drift path (the same per-column tests as Evidently's
DataDriftPreset, vectorized) and Evidently's classification tests; the Evidently report
holds the same figures for a person to read.
"""

from __future__ import annotations

import math
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from domainflow.config import PipelineConfig
from domainflow.store.checks import CheckRecord

from .drift import ColumnDrift, DriftResult, DriftThresholds, detect_drift
from .events import DRIFT_DETECTED, FORECAST_BREACH, QUALITY_DEGRADED, DomainEvent
from .forecast import Forecast, forecast_breach
from .health import Health, health_score
from .reference import Reference
from .reports import MonitoringReport, QualityCheck, build_report
from .window import LogWindow, day_quality, stream_log_days

# A day needs this many predictions before its drift share counts in the daily series.
MIN_DAY_ROWS = 100
# A feature null in at least this share of the reference rows is not "drifted" for a window without values.
MOSTLY_NULL = 0.5
DAILY_COLUMNS = ["predictions", "labelled", "log_loss", "auc", "drift_share"]


@dataclass(frozen=True)
class DomainCheck:
    domain: str
    version: str
    # "ok" | "drift" | "degraded" | "insufficient" (too few predictions to judge)
    status: str
    window_rows: int
    labelled_rows: int
    drift: DriftResult | None = None
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


def check_domain(reference: Reference, window: LogWindow, daily: pd.DataFrame, config: PipelineConfig) -> DomainCheck:
    """Judge the latest `monitoring.window_rows` of `window`, and forecast the `daily_series` of its history."""
    monitoring = config.monitoring
    window = window.latest(monitoring.window_rows)
    base = dict(domain=reference.domain, version=reference.version, window_rows=window.rows,
                labelled_rows=len(window.labelled), reference_data_matches=reference.data_matches)  # fmt: skip
    if window.rows < monitoring.min_window_rows:
        note = f"{window.rows} predictions in the window; monitoring.min_window_rows is {monitoring.min_window_rows}"
        return DomainCheck(status="insufficient", note=note, **base)

    drift = feature_drift(reference.train, window.frame, config)
    report = evidently_report(reference, window, config)
    forecasts = forecast_series(daily, reference, config)
    quality = report.quality
    health = health_score(
        auc=quality.auc if quality else None, reference_auc=reference.auc, drift_share=drift.share_drifted,
        p95_latency_ms=window.p95_latency_ms, error_rate=window.error_rate, sla=monitoring.sla,
    )  # fmt: skip

    figures = {"version": reference.version, "window_rows": window.rows}
    events = []
    if drift.dataset_drift:
        events.append(DomainEvent(DRIFT_DETECTED, config.name, reference.domain, {
            **figures, "drift_share": drift.share_drifted, "drifted_columns": drift.drifted_columns()}))  # fmt: skip
    if quality is not None and not quality.passed:
        failed = [t["name"] for t in quality.tests if t["status"] != "SUCCESS"]
        events.append(DomainEvent(QUALITY_DEGRADED, config.name, reference.domain, {
            **figures, "auc": quality.auc, "log_loss": quality.log_loss, "reference_auc": quality.reference_auc,
            "reference_log_loss": quality.reference_log_loss, "failed_tests": failed}))  # fmt: skip
    for forecast in forecasts:
        if forecast.early_warning:
            payload = {**figures, **forecast.to_dict()}
            events.append(DomainEvent(FORECAST_BREACH, config.name, reference.domain, payload))
    status = "degraded" if quality is not None and not quality.passed else "drift" if drift.dataset_drift else "ok"
    return DomainCheck(
        status=status, drift=drift, prediction_drift=report.prediction_drift, quality=quality, daily=daily,
        forecasts=forecasts, health=health, report_html=report.html, events=events, **base,
    )  # fmt: skip


def feature_drift(
    reference: pd.DataFrame, current: pd.DataFrame, config: PipelineConfig, skip: Collection[str] = ()
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
    result = detect_drift(reference, current, numeric, categorical, drift_share=monitoring.drift_share,
                          thresholds=drift_thresholds(config), max_exact_rows=monitoring.max_exact_rows)  # fmt: skip
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
    reference: Reference, days: Iterable[tuple[pd.Timestamp, LogWindow]], config: PipelineConfig
) -> pd.DataFrame:
    """Per event day: predictions, labelled, log loss, AUC and the share of drifted feature columns.

    `days` come one at a time (`stream_log_days` from the log, `days_in` from a frame), and each is
    dropped once its figures are taken, so a long history never sits in memory whole.
    """
    figures = []
    for day, rows in days:
        # A day's AUC and log loss on fewer labels than a window needs are too noisy to forecast from.
        quality = day_quality(rows, min_labelled=config.monitoring.min_labelled)
        drifted = np.nan
        if rows.rows >= MIN_DAY_ROWS:
            # A column with one value all day (a calendar column, by construction) against the reference's
            # many always "drifts", and says nothing of the day; the window check, across days, still tests it.
            fixed = [c for c in config.data.features if rows.frame[c].nunique(dropna=True) == 1]
            if len(fixed) < len(config.data.features):
                drifted = float(feature_drift(reference.train, rows.frame, config, skip=fixed).share_drifted)
        figures.append({"day": day, **quality, "drift_share": drifted})
    if not figures:
        return pd.DataFrame(columns=DAILY_COLUMNS)
    return pd.DataFrame(figures).set_index("day")


def build_daily_series(
    engine: Engine, domain: str, version: str, reference: Reference, config: PipelineConfig
) -> pd.DataFrame:
    """The version's daily series over its logged history, streamed from the log one day at a time."""
    days = stream_log_days(engine, domain, config.data.features, version=version,
                           history_days=config.monitoring.history_days)  # fmt: skip
    return daily_series(reference, days, config)


def forecast_series(daily: pd.DataFrame, reference: Reference, config: PipelineConfig) -> list[Forecast]:
    """Forecasts of the daily drift share, log loss and AUC against the thresholds the checks use."""
    if daily.empty:
        return []
    monitoring = config.monitoring
    wanted = [
        ("drift_share", monitoring.drift_share, "above"),
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


def evidently_report(reference: Reference, window: LogWindow, config: PipelineConfig) -> MonitoringReport:
    """Evidently's drift and classification report of `window` against the reference, with the quality tests."""
    monitoring = config.monitoring
    return build_report(
        reference.train, window.frame, *_with_values(reference.train, window.frame, config),
        quality_reference=reference.test, drift_share=monitoring.drift_share,
        thresholds=drift_thresholds(config), min_labelled=monitoring.min_labelled,
        max_auc_drop=monitoring.max_auc_drop, max_log_loss_increase=monitoring.max_log_loss_increase,
    )  # fmt: skip
