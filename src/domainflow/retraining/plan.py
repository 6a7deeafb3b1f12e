"""Whether a domain is retrained now, and where its data ends: the split moved forward to the newly labelled months.

The retrain keeps the lengths of the configured validation and test windows and ends its
test window where the labels end, so the new version is trained on everything before, is
tested on the latest labelled month, and nothing it is judged on was seen in training.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import mlflow.artifacts
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from sqlalchemy import Engine

from domainflow.config import PipelineConfig, SplitConfig
from domainflow.registry.aliases import pending_challenger
from domainflow.registry.champion import recorded_split
from domainflow.registry.domain_model import DomainModel
from domainflow.registry.mlflow_registry import (
    CHAMPION,
    artifact_absent,
    current_alias_version,
    fluent_tracking_uri,
    registry_failure,
)
from domainflow.store.audit import AuditEntry, record_audit
from domainflow.store.prediction_log import latest_labelled_event_time
from domainflow.store.promotions import RUNNING, read_promotion


@dataclass(frozen=True)
class RetrainingTrigger:
    """What asked for a retrain, for its `retrain` row in the audit log."""

    reason: str  # the event's name (domainflow.drift.detected, ...), or why it was asked for
    actor: str  # who: the flow run that plans it
    event_id: str | None = None  # the Prefect event that triggered it, when one did


@dataclass(frozen=True)
class RetrainingWindow:
    labelled_until: datetime | None
    split: SplitConfig | None  # None: nothing new to train on
    note: str
    domain: str = ""

    def applied_to(self, config: PipelineConfig) -> PipelineConfig:
        """`config` with this window's split: what the retrain trains, tests and is gated on."""
        if self.split is None:
            raise ValueError(f"no window to retrain {self.domain} on: {self.note}")
        return config.model_copy(update={"split": self.split})


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


def clear_of_champion(window: RetrainingWindow, champion: SplitConfig | None, version: str = "") -> RetrainingWindow:
    """`window` without its split when its test window would start inside what the champion trained or validated on.

    The retrain and the champion are gated on the retrain's test window; rows the champion saw bias
    that comparison toward it (a manual or early `labelled_until` puts them there).
    """
    if window.split is None or champion is None or window.split.validation_until >= champion.validation_until:
        return window
    note = (
        f"the test window would start {window.split.validation_until:%Y-%m-%d}, inside what champion "
        f"v{version} trained and validated on (to {champion.validation_until:%Y-%m-%d}): retrain once labels "
        f"reach {champion.validation_until + (window.split.test_until - window.split.validation_until):%Y-%m-%d}"
    )
    return RetrainingWindow(window.labelled_until, None, note, window.domain)


def version_trained_on(tracking_uri: str, name: str, split: SplitConfig, look_back: int = 5) -> str | None:
    """The newest of the model's latest `look_back` versions whose run trained on `split`, if any.

    Drift persists for days, so monitoring raises the same event every hour; a version already trained
    on the window answers it until new labels move the window.
    """
    client = MlflowClient(tracking_uri)
    try:
        versions = client.search_model_versions(f"name = '{name}'", max_results=200)
    except MlflowException as error:
        # An outage must not read as "never trained on this window": that would train it again.
        raise registry_failure(error, f"listing the versions of {name}") from error
    for version in sorted(versions, key=lambda v: int(v.version), reverse=True)[:look_back]:
        try:
            with fluent_tracking_uri(tracking_uri):
                recorded = mlflow.artifacts.load_dict(f"runs:/{version.run_id}/config.json")
        except MlflowException as error:
            if artifact_absent(error):
                continue  # a version logged without a config (by hand): not trained on any window
            raise registry_failure(error, f"reading the config of {name} v{version.version}") from error
        if SplitConfig.model_validate(recorded.get("split", {})) == split:
            return str(version.version)
    return None


def plan_retraining(
    model: DomainModel, config: PipelineConfig, trigger: RetrainingTrigger, until: datetime | None = None
) -> RetrainingWindow:
    """The window to retrain on; no split while a canary runs or a challenger waits (it answers the event first).

    `until` defaults to where the log's labels end. A window some recent version was already
    trained on gets no split either: that version answers the event until new labels move it.
    Audited (`retrain`, subject the event's id) with the window, or why there is none.
    """
    window = _window(model, config, until)
    after = {"split": window.split.model_dump(mode="json") if window.split is not None else None,
             "labelled_until": window.labelled_until.isoformat() if window.labelled_until else None,
             "event_id": trigger.event_id}  # fmt: skip
    reason = f"{trigger.reason}: {window.note}"
    record_audit(model.engine, AuditEntry(domain=model.domain, action="retrain", subject=trigger.event_id or "request",
                                          before=None, after=after, reason=reason, actor=trigger.actor))  # fmt: skip
    return window


def _window(model: DomainModel, config: PipelineConfig, until: datetime | None) -> RetrainingWindow:
    domain = model.domain
    promotion = read_promotion(model.engine, domain)
    if promotion is not None and promotion.status == RUNNING:
        return RetrainingWindow(None, None, f"v{promotion.version} is rolling out; retrain after it ends", domain)
    pending = pending_challenger(model.tracking_uri, model.name)
    if pending is not None:
        note = f"challenger v{pending[0]} awaits its canary; it is the answer to this event"
        return RetrainingWindow(None, None, note, domain)
    window = replace(retraining_window(config.split, until or labelled_until(model.engine, domain)), domain=domain)
    champion = current_alias_version(model.client, model.name, CHAMPION)
    if window.split is not None and champion is not None:
        run_id = model.client.get_model_version(model.name, champion).run_id
        window = clear_of_champion(window, recorded_split(model.tracking_uri, run_id), champion)
    if window.split is not None:
        done = version_trained_on(model.tracking_uri, model.name, window.split)
        if done is not None:
            note = f"v{done} was trained on this window already ({window.note}); retrain when new labels move it"
            window = RetrainingWindow(window.labelled_until, None, note, domain)
    return window
