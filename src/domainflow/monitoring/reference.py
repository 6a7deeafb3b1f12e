"""The reference a served version is watched against: its labelled months nearest serving, and its test month.

Training rows are not copied into MLflow (only differentially private statistics leave the
pipeline): the reference is rebuilt from the data source with the version's own recorded
configuration (`config.json` of its run) and checked against the data fingerprint the
version carries, so a source that changed since training is reported, not silently used.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

import mlflow.artifacts
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from sklearn.metrics import log_loss, roc_auc_score

from domainflow.config import PipelineConfig
from domainflow.data.prepared import DomainData
from domainflow.data.sources import fingerprint_frame
from domainflow.data.validation import LABEL_COLUMN
from domainflow.registry.champion import loaded_version
from domainflow.registry.mlflow_registry import CHAMPION, TAG, current_alias_version, fluent_tracking_uri

from .importance import feature_importance
from .window import LABEL, SCORE


@dataclass(frozen=True)
class VersionRecord:
    """A registered version and the configuration and data fingerprint its training run recorded."""

    name: str
    version: str
    run_id: str
    config: PipelineConfig
    data_fingerprint: str | None


def version_record(tracking_uri: str, name: str, version: str) -> VersionRecord:
    client = MlflowClient(tracking_uri)
    model_version = client.get_model_version(name, version)
    with fluent_tracking_uri(tracking_uri):
        recorded = mlflow.artifacts.load_dict(f"runs:/{model_version.run_id}/config.json")
    return VersionRecord(
        name=name,
        version=version,
        run_id=model_version.run_id,
        config=PipelineConfig.model_validate(recorded),
        data_fingerprint=model_version.tags.get(f"{TAG}data_fingerprint"),
    )


@dataclass(frozen=True)
class Reference:
    """`train`: the version's most recent training and validation months, scored, with their event times
    (the `timestamp` column); `test`: its scored test month."""

    domain: str
    version: str
    train: pd.DataFrame
    test: pd.DataFrame
    # False when the source's valid rows no longer hash to the version's data fingerprint.
    data_matches: bool
    # The event-time column of `train` (thresholds are calibrated on its whole days); None: not known.
    timestamp: str | None = None
    # The version's permutation importance per feature on its test month (empty: not measured).
    importance: Mapping[str, float] = field(default_factory=dict)

    @cached_property
    def auc(self) -> float:
        return float(roc_auc_score(self.test[LABEL], self.test[SCORE]))

    @cached_property
    def log_loss(self) -> float:
        return float(log_loss(self.test[LABEL], np.clip(self.test[SCORE], 1e-6, 1 - 1e-6), labels=[0, 1]))


def find_served_version(tracking_uri: str, name: str) -> VersionRecord | None:
    """The model's champion with the config its training run recorded; None when nothing is served."""
    version = current_alias_version(MlflowClient(tracking_uri), name, CHAMPION)
    return None if version is None else version_record(tracking_uri, name, version)


def recent_rows(data: DomainData, timestamp: str, months: int, rows: int, seed: int) -> pd.DataFrame:
    """The training and validation rows of the last `months` months before the test month, at most `rows`.

    The months nearest serving are the ones whose season and traffic the served window resembles most;
    January's weather says little of September's. Over `rows`, a seeded sample of whole days is kept (the
    thresholds are calibrated on whole days).
    """
    labelled = pd.concat([data.split.train, data.split.validation], ignore_index=True)
    times = pd.to_datetime(labelled[timestamp])
    end = times.max().floor("D") + pd.Timedelta(days=1)
    recent = labelled.loc[times >= end - pd.DateOffset(months=months)]
    if len(recent) <= rows:
        return recent.sort_values(timestamp, kind="stable").reset_index(drop=True)
    days = pd.to_datetime(recent[timestamp]).dt.floor("D")
    per_day = days.value_counts().sample(frac=1.0, random_state=seed)
    kept = per_day.index[per_day.cumsum() <= rows]
    return recent.loc[days.isin(kept)].sort_values(timestamp, kind="stable").reset_index(drop=True)


@dataclass(frozen=True)
class ReferenceSpec:
    """How much of the version's labelled data the reference keeps (monitoring.reference_months / reference_rows)."""

    months: int
    rows: int
    seed: int = 0


def build_reference(tracking_uri: str, record: VersionRecord, data: DomainData, spec: ReferenceSpec) -> Reference:
    """Score the recent labelled rows and the whole test month with the version, and measure its feature importance.

    `data` is the domain's data prepared with the version's own config; the fingerprint of its
    valid rows is compared with the one the version recorded.
    """
    domain, split, valid = data.domain, data.split, data.validation.valid
    features, timestamp = record.config.data.features, record.config.data.timestamp
    train = recent_rows(data, timestamp, spec.months, spec.rows, spec.seed)
    # One load of the version for the scores of both parts and the importance.
    both = pd.concat([train, split.test], ignore_index=True)
    scored = both[features].copy()
    with loaded_version(tracking_uri, record.name, record.version) as predict:
        scored[SCORE] = predict(both[features])
        importance = feature_importance(predict, split.test[features], split.test[LABEL_COLUMN].to_numpy(),
                                        seed=spec.seed)  # fmt: skip
    scored[LABEL] = both[LABEL_COLUMN].to_numpy(dtype=float)
    scored[timestamp] = pd.to_datetime(both[timestamp]).to_numpy()
    frames = {"train": scored.iloc[: len(train)].reset_index(drop=True),
              "test": scored.iloc[len(train) :].reset_index(drop=True)}  # fmt: skip
    return Reference(domain, record.version, frames["train"], frames["test"],
                     data_matches=record.data_fingerprint in (None, fingerprint_frame(valid)),
                     timestamp=timestamp, importance=importance)  # fmt: skip
