"""Where a retrain's data ends: the split moved forward to include the newly labelled months.

The retrain keeps the lengths of the configured validation and test windows and ends its
test window where the labels end, so the new version is trained on everything before, is
tested on the latest labelled month, and nothing it is judged on was seen in training.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import mlflow.artifacts
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from sqlalchemy import Engine

from domainflow.config import SplitConfig
from domainflow.registry.mlflow_registry import fluent_tracking_uri
from domainflow.store.prediction_log import latest_labelled_event_time


@dataclass(frozen=True)
class RetrainingWindow:
    labelled_until: datetime | None
    split: SplitConfig | None  # None: nothing new to train on
    note: str


def labelled_until(engine: Engine, domain: str) -> datetime | None:
    """The day after the latest event time among the domain's labelled predictions (None without any)."""
    latest = latest_labelled_event_time(engine, domain)
    if latest is None:
        return None
    day = pd.Timestamp(datetime.fromtimestamp(latest, UTC).replace(tzinfo=None)).floor("D")
    return (day + timedelta(days=1)).to_pydatetime()


def retraining_window(current: SplitConfig, until: datetime | None) -> RetrainingWindow:
    """`current` moved so its test window ends at `until`; no split when `until` adds nothing to it."""
    if until is None:
        return RetrainingWindow(None, None, "no labelled predictions in the log: nothing new to train on")
    if until <= current.test_until:
        note = (f"labels end at {until:%Y-%m-%d}, within the current split (test until "
                f"{current.test_until:%Y-%m-%d}): nothing new to train on")  # fmt: skip
        return RetrainingWindow(until, None, note)
    test_length = current.test_until - current.validation_until
    validation_length = current.validation_until - current.train_until
    validation_until = until - test_length
    split = SplitConfig(train_until=validation_until - validation_length, validation_until=validation_until,
                        test_until=until)  # fmt: skip
    note = (f"train before {split.train_until:%Y-%m-%d}, validate to {split.validation_until:%Y-%m-%d}, "
            f"test to {split.test_until:%Y-%m-%d} (labels end {until:%Y-%m-%d})")  # fmt: skip
    return RetrainingWindow(until, split, note)


def version_trained_on(tracking_uri: str, name: str, split: SplitConfig, look_back: int = 5) -> str | None:
    """The newest of the model's latest `look_back` versions whose run trained on `split`, if any.

    Drift persists for days, so monitoring raises the same event every hour; a version already trained
    on the window answers it until new labels move the window.
    """
    client = MlflowClient(tracking_uri)
    try:
        versions = client.search_model_versions(f"name = '{name}'", max_results=200)
    except MlflowException:
        return None
    for version in sorted(versions, key=lambda v: int(v.version), reverse=True)[:look_back]:
        try:
            with fluent_tracking_uri(tracking_uri):
                recorded = mlflow.artifacts.load_dict(f"runs:/{version.run_id}/config.json")
        except MlflowException:
            continue
        if SplitConfig.model_validate(recorded.get("split", {})) == split:
            return str(version.version)
    return None
