"""The domain's current champion, scored on the candidate's rows: the reference the gates compare against."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import mlflow.artifacts
import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from domainflow.config import SplitConfig
from domainflow.registry.integrity import verified_model_folder
from domainflow.registry.mlflow_registry import (
    CHAMPION,
    PREVIOUS_CHAMPION,
    TAG,
    artifact_absent,
    current_alias_version,
    fluent_tracking_uri,
    registry_failure,
)


@dataclass(frozen=True)
class ChampionScores:
    version: str
    run_id: str
    scores: np.ndarray
    # The windows the version's training run recorded (config.json's split); None when it recorded none.
    split: SplitConfig | None = None
    # Its scores on the candidate's validation rows, when those were scored too.
    validation_scores: np.ndarray | None = None
    alias: str = CHAMPION  # the alias it was found by

    @property
    def label(self) -> str:
        return f"{self.alias} v{self.version}"


def score_champion(
    tracking_uri: str, name: str, rows: pd.DataFrame, *, own_training: str = ""
) -> ChampionScores | None:
    """The champion's delay probabilities for `rows`, or None when the domain has no champion yet.

    Loaded through the registry alias and pyfunc, exactly as a serving process
    would load it, so the comparison is with what production serves.

    `own_training`: the candidate's training key (tracking.training_run_key). A candidate is never its
    own reference: when the champion came from that training (a rerun judging the same model again,
    after a changed gate), the reference is the champion it replaced (`previous-champion`), or none.
    """
    client = MlflowClient(tracking_uri)
    version, alias = current_alias_version(client, name, CHAMPION), CHAMPION
    if version is not None and own_training and _trained_by(client, name, version, own_training):
        version, alias = current_alias_version(client, name, PREVIOUS_CHAMPION), PREVIOUS_CHAMPION
    if version is None:
        return None
    return replace(score_version(tracking_uri, name, version, rows), alias=alias)


def _trained_by(client: MlflowClient, name: str, version: str, training_key: str) -> bool:
    try:
        run_id = client.get_model_version(name, version).run_id
        run_key = client.get_run(run_id).data.tags.get(f"{TAG}run_key", "") if run_id else ""
    except MlflowException as error:
        raise registry_failure(error, f"reading the training run of {name} v{version}") from error
    return run_key.startswith(f"{training_key}-")


def score_version(tracking_uri: str, name: str, version: str, rows: pd.DataFrame) -> ChampionScores:
    """A registered version's delay probabilities for `rows`, loaded through pyfunc as serving loads it.

    As in serving, only files whose digest matches the one recorded at registration are loaded.
    """
    run_id = MlflowClient(tracking_uri).get_model_version(name, version).run_id
    with loaded_version(tracking_uri, name, version) as predict:
        scores = predict(rows)
    return ChampionScores(version=version, run_id=run_id, scores=scores, split=recorded_split(tracking_uri, run_id))


@contextmanager
def loaded_version(tracking_uri: str, name: str, version: str) -> Iterator[Callable[[pd.DataFrame], np.ndarray]]:
    """The version's scoring function, loaded once for many calls (permutation importance scores it per feature)."""
    with tempfile.TemporaryDirectory(prefix="domainflow-score-") as scratch:
        model = mlflow.pyfunc.load_model(str(verified_model_folder(tracking_uri, name, version, Path(scratch))))
        # The version's own input schema: it may have been trained on other features than the rows carry.
        inputs = model.metadata.get_input_schema().inputs

        def predict(rows: pd.DataFrame) -> np.ndarray:
            missing = [spec.name for spec in inputs if spec.required and spec.name not in rows.columns]
            if missing:
                raise ValueError(f"{name} v{version} needs columns the rows lack: {missing}")
            present = [spec for spec in inputs if spec.name in rows.columns]
            served = rows[[spec.name for spec in present]].astype(
                {spec.name: "float64" for spec in present if spec.type.name == "double"}
            )
            return np.asarray(model.predict(served), dtype=float)

        yield predict


def recorded_split(tracking_uri: str, run_id: str) -> SplitConfig | None:
    """The split a training run recorded in config.json: the windows its version trained, stopped and was tested on."""
    try:
        with fluent_tracking_uri(tracking_uri):
            recorded = mlflow.artifacts.load_dict(f"runs:/{run_id}/config.json")
    except MlflowException as error:
        if artifact_absent(error):
            return None
        raise
    return SplitConfig.model_validate(recorded["split"]) if "split" in recorded else None
