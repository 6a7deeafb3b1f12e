"""MLflow tracking and registry: one experiment and one registered model per domain.

Logging is idempotent: a run is keyed by (domain, data, config, code); when a
finished run with that key exists it is reused instead of logging a duplicate,
and registration reuses the version created from that run.
"""

from __future__ import annotations

import logging
import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature, infer_signature
from mlflow.types import ColSpec, Schema

from domainflow.data.features import FeaturePipeline
from domainflow.models.pyfunc import (
    CALIBRATION_ARTIFACT,
    MODEL_ARTIFACT,
    MODEL_CODE,
    PIPELINE_ARTIFACT,
    serving_requirements,
)

logger = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS_CHAMPION = "previous-champion"
TAG = "domainflow."


class RegistryUnavailable(RuntimeError):
    """The MLflow registry failed with an error other than "does not exist": nothing can be decided on it.

    Raised instead of reading the failure as an absence (no champion, no challenger), which would
    let a gate crown a version with no canary or a promotion lose `previous-champion`.
    """


def registry_failure(error: MlflowException, doing: str) -> RegistryUnavailable:
    """The error a caller raises: what it was doing, and MLflow's code and first line."""
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return RegistryUnavailable(
        f"the MLflow registry failed while {doing} ({error.error_code}: {first[:600]}); stopped before moving "
        "any alias or traffic: run it again once the registry answers"
    )


@dataclass(frozen=True)
class RunRecord:
    """What one domain's training run sends to MLflow."""

    experiment: str
    run_name: str
    run_key: str
    params: dict[str, Any]
    metrics: dict[str, float]
    tags: dict[str, str]
    pipeline: FeaturePipeline
    # The chosen family's variant that serves (see domainflow.candidates), its file as serving reads it.
    model_file: Path
    signature_sample: pd.DataFrame
    signature_scores: np.ndarray  # the served model's scores for signature_sample
    # Its calibration map (domainflow.calibration), a joblib file; None: it serves its scores uncalibrated.
    calibration_file: Path | None = None
    history: list[dict] = field(default_factory=list)  # per-epoch metrics of the final training
    documents: dict[str, Any] = field(default_factory=dict)  # artifact path -> JSON-able payload
    files: dict[str, Path] = field(default_factory=dict)  # artifact folder -> local file (reports)
    logged_by: str = ""  # the Prefect flow run that logs it (its id), tagged on the run


@dataclass(frozen=True)
class LoggedRun:
    run_id: str
    model_uri: str
    reused: bool  # an earlier run with the same key was found, and nothing was logged
    # The differentially private statistics the run published (`dp_*` metrics).
    published: dict[str, float] = field(default_factory=dict)
    # The run's domainflow.* tags (fingerprints, config hash, code version), for its model version.
    version_tags: dict[str, str] = field(default_factory=dict)
    logged_by: str = ""  # the Prefect flow run that logged it ("" outside one)

    def logged_before(self, flow_run_id: str) -> bool:
        """Whether a flow run other than `flow_run_id` logged it: found in MLflow, or answered from Prefect's cache."""
        return self.reused or self.logged_by != flow_run_id


def experiment_id_for(client: MlflowClient, name: str, artifact_root: str) -> str:
    """The experiment's id, creating it with its artifacts under `artifact_root` when it does not exist yet."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    return client.create_experiment(name, artifact_location=f"{artifact_root.rstrip('/')}/{name}")


def find_finished_run(client: MlflowClient, experiment_id: str, run_key: str):
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{TAG}run_key` = '{run_key}' and attributes.status = 'FINISHED'",
        max_results=1,
        order_by=["attributes.start_time DESC"],
    )
    return runs[0] if runs else None


def log_run(tracking_uri: str, artifact_root: str, record: RunRecord) -> LoggedRun:
    """Log params, metrics, epoch history, documents and the pyfunc model; reuse an identical run."""
    client = MlflowClient(tracking_uri)
    experiment_id = experiment_id_for(client, record.experiment, artifact_root)
    existing = find_finished_run(client, experiment_id, record.run_key)
    if existing is not None:
        return LoggedRun(
            existing.info.run_id,
            existing.data.tags[f"{TAG}model_uri"],
            reused=True,
            published=_published(existing.data.metrics),
            version_tags=_version_tags(existing.data.tags),
            logged_by=existing.data.tags.get(f"{TAG}logged_by", ""),
        )

    tags = {**record.tags, f"{TAG}run_key": record.run_key}
    if record.logged_by:
        tags[f"{TAG}logged_by"] = record.logged_by
    with (
        fluent_tracking_uri(tracking_uri),
        mlflow.start_run(experiment_id=experiment_id, run_name=record.run_name, tags=tags) as run,
    ):
        mlflow.log_params(record.params)
        mlflow.log_metrics(record.metrics)
        for row in record.history:
            epoch = int(row["epoch"])
            mlflow.log_metrics(
                {f"epoch_{k}": float(v) for k, v in row.items() if k != "epoch" and pd.notna(v)}, step=epoch
            )
        for path, payload in record.documents.items():
            mlflow.log_dict(payload, path)
        for folder, local in record.files.items():
            mlflow.log_artifact(str(local), artifact_path=folder)
        model_uri = _log_model(record)
        mlflow.set_tag(f"{TAG}model_uri", model_uri)
    return LoggedRun(
        run.info.run_id,
        model_uri,
        reused=False,
        published=_published(record.metrics),
        version_tags=_version_tags(record.tags),
        logged_by=record.logged_by,
    )


def _version_tags(tags: dict[str, str]) -> dict[str, str]:
    bookkeeping = {f"{TAG}run_key", f"{TAG}model_uri", f"{TAG}logged_by"}
    return {k: v for k, v in tags.items()
            if k.startswith(TAG) and k not in bookkeeping and not k.startswith(f"{TAG}registered_as.")}  # fmt: skip


def _published(metrics: dict[str, float]) -> dict[str, float]:
    return {name: value for name, value in metrics.items() if name.startswith("dp_")}


def _signature(pipeline: FeaturePipeline, sample: pd.DataFrame, scores) -> ModelSignature:
    """Every feature optional (the pipeline imputes numbers and maps unknown categories to 0).

    Inferred from a sample, only the columns that happened to hold a null there
    would accept one at serving time. Numbers are doubles: MLflow refuses to cast
    int64 to double, so clients send 1000.0 rather than 1000.
    """
    inputs = Schema(
        [ColSpec("double", name, required=False) for name in pipeline.numeric]
        + [ColSpec("string", name, required=False) for name in pipeline.categorical]
    )
    return ModelSignature(inputs=inputs, outputs=infer_signature(sample, scores).outputs)


@contextmanager
def fluent_tracking_uri(tracking_uri: str):
    """Point MLflow's fluent API (needed by log_model) at `tracking_uri`, then put it back.

    mlflow.set_tracking_uri also exports MLFLOW_TRACKING_URI to the process
    environment, which would silently redirect every later resolve_settings().
    """
    # set_tracking_uri keeps the global URI and the variable in step, so the
    # variable is the previous state; None unsets both.
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(tracking_uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous)


class StoreBusy(RuntimeError):
    """MLflow's SQLite store stayed locked by another writer past MLflow's own waiting and retrying."""


@contextmanager
def explained_store_errors(tracking_uri: str):
    """A SQLite store's "database is locked" becomes a StoreBusy that says why and what to do.

    SQLite takes one writer at a time; MLflow waits for the lock and retries, so this only
    surfaces when another writer held it for a long time (many domain workers, a long transaction).
    The store is left as it was: SQLite rolls the failed write back whole.
    """
    try:
        yield
    except MlflowException as error:
        if not (tracking_uri.startswith("sqlite") and "database is locked" in str(error)):
            raise
        raise StoreBusy(
            f"MLflow's SQLite store {tracking_uri.removeprefix('sqlite:///')} stayed locked by another writer, "
            "and this write was not made (nothing was half-written). SQLite takes one writer at a time: run it "
            "again, train fewer domains at once (scale.domain_workers), or put MLflow on PostgreSQL "
            "(MLFLOW_TRACKING_URI=postgresql://...) for concurrent writers"
        ) from None


def _log_model(record: RunRecord) -> str:
    with tempfile.TemporaryDirectory() as scratch:
        pipeline_path = Path(scratch) / "feature_pipeline.joblib"
        joblib.dump(record.pipeline, pipeline_path)
        artifacts = {PIPELINE_ARTIFACT: str(pipeline_path), MODEL_ARTIFACT: str(record.model_file)}
        if record.calibration_file is not None:
            artifacts[CALIBRATION_ARTIFACT] = str(record.calibration_file)
        # The example must match the signature: numbers as doubles.
        sample = record.signature_sample.astype(dict.fromkeys(record.pipeline.numeric, "float64"))
        info = mlflow.pyfunc.log_model(
            name="model",
            # Models from code, as MLflow recommends over pickling the instance.
            python_model=str(MODEL_CODE),
            artifacts=artifacts,
            signature=_signature(record.pipeline, sample, record.signature_scores),
            input_example=sample.head(3),
            pip_requirements=serving_requirements(record.model_file),
        )
    return info.model_uri


def open_tracking_store(tracking_uri: str) -> None:
    """Create (or migrate) the tracking and registry schema now, from this one process.

    MLflow builds a fresh SQLite store's tables on first use; two worker processes doing that
    at once both run the migration, and one fails ("table _alembic_tmp_experiments already exists").
    """
    client = MlflowClient(tracking_uri)
    client.search_experiments(max_results=1)
    client.search_registered_models(max_results=1)


def register_logged_model(
    tracking_uri: str, name: str, logged: LoggedRun, tags: dict[str, str], description: str = ""
) -> str:
    """Register the run's model under `name`; the version from an earlier identical run is reused."""
    client = MlflowClient(tracking_uri)
    try:
        client.create_registered_model(name, description=description)
    except MlflowException as error:
        if error.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    reused = version_of_run(client, name, logged.run_id)
    if reused is not None:
        return reused
    # The run remembers the version it was registered as: gone now, it was deleted by hand.
    remembered = f"{TAG}registered_as.{name}"
    registered_as = client.get_run(logged.run_id).data.tags.get(remembered)
    if registered_as:
        tags = {**tags, f"{TAG}registered_again": f"{name} v{registered_as} is missing from the registry"}
    model_id = logged.model_uri.removeprefix("models:/")
    # MLflow resolves a `models:/<id>` source through the fluent tracking URI.
    with fluent_tracking_uri(tracking_uri):
        version = client.create_model_version(
            name, logged.model_uri, run_id=logged.run_id, tags=tags, model_id=model_id
        )
    client.set_tag(logged.run_id, remembered, str(version.version))
    if registered_as:
        logger.warning("%s v%s (run %s) is missing from the registry, deleted by hand: registered again as v%s",
                       name, registered_as, logged.run_id, version.version)  # fmt: skip
    return str(version.version)


def version_of_run(client: MlflowClient, name: str, run_id: str) -> str | None:
    """The version of `name` registered from the run `run_id`, if any."""
    for version in client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'"):
        return str(version.version)
    return None


def registered_version(tracking_uri: str, name: str, experiment: str, run_key: str) -> str | None:
    """The version of `name` registered from the finished run keyed `run_key`, while both are in the registry.

    None when the run, or the version it remembers (deleted by hand), is gone: the training's
    record is then logged and registered again. Any other registry error is RegistryUnavailable.
    """
    client = MlflowClient(tracking_uri)
    try:
        found = client.get_experiment_by_name(experiment)
        run = find_finished_run(client, found.experiment_id, run_key) if found is not None else None
    except MlflowException as error:
        raise registry_failure(error, f"finding the run {run_key} of {name}") from error
    remembered = run.data.tags.get(f"{TAG}registered_as.{name}") if run is not None else None
    return remembered if remembered and version_exists(client, name, remembered) else None


def registered_again(tracking_uri: str, name: str, version: str) -> str | None:
    """ "<name> v1 is missing from the registry" when `version` replaced a version of its run deleted by hand."""
    return MlflowClient(tracking_uri).get_model_version(name, version).tags.get(f"{TAG}registered_again")


def current_alias_version(client: MlflowClient, name: str, alias: str) -> str | None:
    """The version `alias` names; None when the model or the alias does not exist (RegistryUnavailable otherwise)."""
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException as error:
        if absent_in_registry(error):
            return None
        raise registry_failure(error, f"reading the {alias!r} alias of {name}") from error


def absent_in_registry(error: Exception) -> bool:
    """Whether MLflow's error says the model, version or alias does not exist (not that the registry failed).

    A missing model or version is RESOURCE_DOES_NOT_EXIST; a missing alias is INVALID_PARAMETER_VALUE
    "Registered model alias ... not found" (SQL store and REST server alike), the code's other uses are not absences.
    """
    if not isinstance(error, MlflowException):
        return False
    return error.error_code == "RESOURCE_DOES_NOT_EXIST" or (
        error.error_code == "INVALID_PARAMETER_VALUE" and "not found" in str(error)
    )


def version_exists(client: MlflowClient, name: str, version: str) -> bool:
    """False when `name` has no version `version`; any other registry error is RegistryUnavailable."""
    try:
        client.get_model_version(name, version)
    except MlflowException as error:
        if absent_in_registry(error):
            return False
        raise registry_failure(error, f"reading {name} v{version}") from error
    return True


def version_tags_of(client: MlflowClient, name: str, version: str) -> dict[str, str]:
    """The version's tags (its stored gate verdict among them); RegistryUnavailable when the registry fails."""
    try:
        return dict(client.get_model_version(name, version).tags)
    except MlflowException as error:
        raise registry_failure(error, f"reading {name} v{version}") from error


def artifact_absent(error: MlflowException) -> bool:
    """Whether loading a run's artifact failed because it is not there (a run logged by hand), not an outage."""
    return absent_in_registry(error) or "No such file" in str(error) or "does not exist" in str(error)


@dataclass(frozen=True)
class ModelStatus:
    """A registered model as `domainflow status` shows it."""

    name: str
    versions: int
    aliases: dict[str, str]  # alias -> version
    latest_version: str | None
    latest_gate: str  # why the gates passed or failed the latest version


def registered_models(tracking_uri: str, prefix: str) -> list[ModelStatus]:
    """The registered models named `<prefix>-*`, with their aliases and their latest version's gate."""
    client = MlflowClient(tracking_uri)
    statuses = []
    for model in client.search_registered_models(filter_string=f"name LIKE '{prefix}-%'"):
        versions = client.search_model_versions(f"name = '{model.name}'")
        latest = max(versions, key=lambda v: int(v.version)) if versions else None
        statuses.append(ModelStatus(
            name=model.name, versions=len(versions),
            aliases={alias: str(version) for alias, version in sorted(model.aliases.items())},
            latest_version=str(latest.version) if latest else None,
            latest_gate=latest.tags.get(f"{TAG}gate_reason", "") if latest else "",
        ))  # fmt: skip
    return statuses
