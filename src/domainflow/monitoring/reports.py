"""Evidently's side of monitoring: its drift verdicts, the quality tests, and the report a person reads.

Evidently is imported inside the functions: the import alone takes ~6 s.

Two Evidently runs make one report. Drift (DataDriftPreset over the features, ValueDrift on
the score) uses every row against the drift reference; quality (RocAuc, LogLoss with tests
relative to the reference's own values) uses only labelled rows against the quality
reference. One run cannot do both: Evidently's confusion-matrix step does not drop rows
whose label is null (sklearn then refuses the labels), and the two may have different
references. The snapshots are merged into one before rendering.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pandas as pd

from .drift import CATEGORICAL, NUMERIC, ColumnDrift, DriftResult, DriftThresholds, check_columns, column_test

_VALUE_DRIFT = "evidently:metric_v2:ValueDrift"
_DRIFTED_COLUMNS = "evidently:metric_v2:DriftedColumnsCount"
_ROC_AUC = "evidently:metric_v2:RocAuc"
_LOG_LOSS = "evidently:metric_v2:LogLoss"


@dataclass(frozen=True)
class QualityCheck:
    rows: int  # labelled rows of the current window
    auc: float | None
    log_loss: float | None
    reference_auc: float | None
    reference_log_loss: float | None
    tests: list[dict]  # [{"name", "status", "description"}] as Evidently reported them
    passed: bool


@dataclass(frozen=True)
class MonitoringReport:
    html: str  # the Evidently report, standalone HTML
    drift: DriftResult  # as Evidently judged it
    prediction_drift: ColumnDrift | None
    quality: QualityCheck | None  # None below min_labelled labelled rows (or one class only) in either frame


def _method_names() -> dict[str, str]:
    """Evidently reports a test by its display name ("K-S p_value"); ours are its registered names ("ks")."""
    from evidently.legacy.calculations import stattests

    tests = (stattests.wasserstein_stat_test, stattests.jensenshannon_stat_test, stattests.ks_stat_test,
             stattests.chi_stat_test, stattests.z_stat_test)  # fmt: skip
    return {test.display_name: test.name for test in tests}


def _statuses(payload: dict) -> dict[str, str]:
    return {test["metric_config"]["metric_id"]: test["status"] for test in payload["tests"]}


def _value_drifts(payload: dict, numeric: list[str]) -> dict[str, ColumnDrift]:
    """Each ValueDrift metric of a snapshot's dict(), with its test's verdict (FAIL means drifted)."""
    names, statuses = _method_names(), _statuses(payload)
    drifts = {}
    for metric in payload["metrics"]:
        config = metric["config"]
        if config["type"] != _VALUE_DRIFT:
            continue
        column = config["column"]
        drifts[column] = ColumnDrift(
            column=column,
            kind=NUMERIC if column in numeric else CATEGORICAL,
            method=names.get(config["method"], config["method"]),
            score=float(metric["value"]),
            threshold=float(config["threshold"]),
            drifted=statuses[metric["id"]] == "FAIL",
        )
    return drifts


def _drift_result(payload: dict, features: list[str], numeric: list[str], rows: tuple[int, int], started: float):
    drifts = _value_drifts(payload, numeric)
    count = next(m for m in payload["metrics"] if m["config"]["type"] == _DRIFTED_COLUMNS)
    return DriftResult(
        columns=[drifts[c] for c in features],
        share_drifted=float(count["value"]["share"]),
        dataset_drift=_statuses(payload)[count["id"]] == "FAIL",  # its test is share < drift_share
        drift_share=float(count["config"]["drift_share"]),
        reference_rows=rows[0],
        current_rows=rows[1],
        sampled_rows=None,
        sampling_error=None,
        seconds=time.perf_counter() - started,
    )


def _run_drift(reference, current, numeric, categorical, extra_numeric, drift_share, thresholds: DriftThresholds):
    """Evidently's drift of the features and of `extra_numeric`, each column at the threshold of the fast path's test.

    Evidently takes one threshold per column; the fast path picks each column's test (and so
    whether its threshold is a p-value or a distance) as Evidently does, so it says which. With
    neither threshold set, Evidently's defaults per test are already the fast path's.
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    features = [*numeric, *categorical]
    columns = [*features, *extra_numeric]
    definition = DataDefinition(numerical_columns=[*numeric, *extra_numeric], categorical_columns=list(categorical))
    per_column = {}
    if thresholds != DriftThresholds():
        kinds = {**dict.fromkeys([*numeric, *extra_numeric], NUMERIC), **dict.fromkeys(categorical, CATEGORICAL)}
        per_column = {
            c: thresholds.for_column(c, column_test(reference[c], current[c], kind))
            for c, kind in kinds.items()
            if reference[c].notna().any() and current[c].notna().any()
        }
    metrics = [DataDriftPreset(columns=features, drift_share=drift_share, per_column_threshold=per_column or None)]
    metrics += [ValueDrift(column=c, threshold=per_column.get(c)) for c in extra_numeric]
    return Report(metrics, include_tests=True).run(
        Dataset.from_pandas(current[columns].copy(), data_definition=definition),
        Dataset.from_pandas(reference[columns].copy(), data_definition=definition),
    )


def evidently_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    *,
    drift_share: float = 0.5,
    thresholds: DriftThresholds = DriftThresholds(),
) -> DriftResult:
    """Evidently's DataDriftPreset verdicts in the fast path's shape (for comparison and the benchmark)."""
    check_columns(reference, current, numeric, categorical)
    started = time.perf_counter()
    snapshot = _run_drift(reference, current, numeric, categorical, [], drift_share, thresholds)
    return _drift_result(snapshot.dict(), [*numeric, *categorical], numeric, (len(reference), len(current)), started)


def _labelled(frame: pd.DataFrame, score: str, label: str) -> pd.DataFrame:
    rows = frame.loc[frame[label].notna() & frame[score].notna(), [score, label]]
    labels = rows[label]
    if not labels.isin([0, 1]).all():
        raise ValueError(f"column {label!r} must hold 0, 1 or null; found {sorted(labels.unique().tolist())[:5]}")
    return rows.assign(**{label: labels.astype(int)})


def _run_quality(reference: pd.DataFrame, current: pd.DataFrame, score, label, max_auc_drop, max_log_loss_increase):
    """RocAuc >= reference AUC - max_auc_drop and LogLoss <= reference log loss + max_log_loss_increase.

    The limits are plain numbers from the reference's AUC and log loss, computed with the
    sklearn calls Evidently makes (evidently.tests.Reference would do the same, but its
    test names come out garbled: "Greater or Equal 0.857 ± 0.050Reference 0.857 ± ...").
    """
    from evidently import BinaryClassification, DataDefinition, Dataset, Report
    from evidently.metrics import LogLoss, RocAuc
    from evidently.tests import gte, lte
    from sklearn.metrics import log_loss, roc_auc_score

    definition = DataDefinition(
        numerical_columns=[score], classification=[BinaryClassification(target=label, prediction_probas=score)]
    )
    min_auc = float(roc_auc_score(reference[label], reference[score])) - max_auc_drop
    max_loss = float(log_loss(reference[label], reference[score])) + max_log_loss_increase
    auc, loss = RocAuc(tests=[gte(min_auc)]), LogLoss(tests=[lte(max_loss)])
    snapshot = Report([auc, loss]).run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )
    payload = snapshot.dict()
    values = {m["config"]["type"]: float(m["value"]) for m in payload["metrics"]}

    def reference_value(metric) -> float:
        return float(snapshot.context.get_reference_metric_result(metric.metric_id).value)

    tests = [
        {k: str(getattr(t[k], "value", t[k])) for k in ("name", "status", "description")} for t in payload["tests"]
    ]
    check = QualityCheck(
        rows=len(current),
        auc=values[_ROC_AUC],
        log_loss=values[_LOG_LOSS],
        reference_auc=reference_value(auc),
        reference_log_loss=reference_value(loss),
        tests=tests,
        passed=bool(tests) and all(t["status"] == "SUCCESS" for t in tests),
    )
    return check, snapshot


def _merge(first, second):
    """One snapshot holding both runs' metrics, widgets and test summaries."""
    from evidently.core.report import Snapshot
    from evidently.core.serialization import SnapshotModel

    a, b = first.to_snapshot_model(), second.to_snapshot_model()
    return Snapshot.load_model(
        SnapshotModel(
            report=a.report,
            name=a.name,
            timestamp=a.timestamp,
            metadata=a.metadata,
            tags=a.tags,
            metric_results={**a.metric_results, **b.metric_results},
            top_level_metrics=[*a.top_level_metrics, *b.top_level_metrics],
            widgets=[*a.widgets, *b.widgets],
            tests_widgets=[*a.tests_widgets, *b.tests_widgets],
        )
    )


def build_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    *,
    score: str = "score",
    label: str = "label",
    quality_reference: pd.DataFrame | None = None,
    drift_share: float = 0.5,
    thresholds: DriftThresholds = DriftThresholds(),
    min_labelled: int = 200,
    max_auc_drop: float = 0.05,
    max_log_loss_increase: float = 0.05,
) -> MonitoringReport:
    """Feature and prediction drift of `current` against `reference`, and its quality tests when labelled enough.

    The quality reference (the champion's scores on its test month) is `quality_reference`,
    or `reference` itself when not given; rows whose label is null count for drift only.
    """
    check_columns(reference, current, [*numeric, score], categorical)
    quality_reference = reference if quality_reference is None else quality_reference
    for name, frame in (("current", current), ("quality reference", quality_reference)):
        missing = [c for c in (score, label) if c not in frame.columns]
        if missing:
            raise ValueError(f"columns {missing} are missing from the {name} frame")
    started = time.perf_counter()
    drift_snapshot = _run_drift(reference, current, numeric, categorical, [score], drift_share, thresholds)
    payload = drift_snapshot.dict()
    features = [*numeric, *categorical]
    drift = _drift_result(payload, features, numeric, (len(reference), len(current)), started)
    prediction_drift = _value_drifts(payload, [*numeric, score])[score]

    snapshot, quality = drift_snapshot, None
    labelled = [_labelled(frame, score, label) for frame in (quality_reference, current)]
    if all(len(rows) >= min_labelled and rows[label].nunique() == 2 for rows in labelled):
        quality, quality_snapshot = _run_quality(*labelled, score, label, max_auc_drop, max_log_loss_increase)
        snapshot = _merge(drift_snapshot, quality_snapshot)
    return MonitoringReport(snapshot.get_html_str(as_iframe=False), drift, prediction_drift, quality)
