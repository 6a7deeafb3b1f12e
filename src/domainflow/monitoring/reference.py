"""The reference a served version is watched against: the rows it was trained on, and its test month.

Training rows are not copied into MLflow (only differentially private statistics leave the
pipeline): the reference is rebuilt from the data source with the version's own recorded
configuration (`config.json` of its run) and checked against the data fingerprint the
version carries, so a source that changed since training is reported, not silently used.
"""

from __future__ import annotations

from dataclasses import dataclass
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
from domainflow.registry.champion import score_version
from domainflow.registry.mlflow_registry import CHAMPION, TAG, current_alias_version, fluent_tracking_uri

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
    """`train`: a seeded sample of the training rows with the version's scores; `test`: its scored test month."""

    domain: str
    version: str
    train: pd.DataFrame
    test: pd.DataFrame
    # False when the source's valid rows no longer hash to the version's data fingerprint.
    data_matches: bool

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


def build_reference(tracking_uri: str, record: VersionRecord, data: DomainData, rows: int, seed: int) -> Reference:
    """Score a seeded sample of the training rows (at most `rows`) and the whole test month with the version.

    `data` is the domain's data prepared with the version's own config; the fingerprint of its
    valid rows is compared with the one the version recorded.
    """
    domain, split, valid = data.domain, data.split, data.validation.valid
    features = record.config.data.features
    train = split.train.sample(n=min(rows, len(split.train)), random_state=seed).sort_index()
    # One load of the version, one call over both parts.
    both = pd.concat([train, split.test], ignore_index=True)
    scored = both[features].copy()
    scored[SCORE] = score_version(tracking_uri, record.name, record.version, both[features]).scores
    scored[LABEL] = both[LABEL_COLUMN].to_numpy(dtype=float)
    frames = {"train": scored.iloc[: len(train)].reset_index(drop=True),
              "test": scored.iloc[len(train) :].reset_index(drop=True)}  # fmt: skip
    return Reference(domain, record.version, frames["train"], frames["test"],
                     data_matches=record.data_fingerprint in (None, fingerprint_frame(valid)))  # fmt: skip
