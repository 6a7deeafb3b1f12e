"""Request and response bodies of the prediction server; the feature fields are built from the config.

The bodies are strict (no coercion of "1000" to a number, no unknown keys) so a client's
mistake comes back as a 422 naming the field, and the OpenAPI document lists every feature
with its type, which is what clients and the fuzz tests generate requests from.
"""

# No `from __future__ import annotations`: pydantic and FastAPI must see the
# feature model built inside request_models() as a class, not as a string.

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    create_model,
    model_validator,
)

from domainflow.config import PipelineConfig

# Beyond this a scaled feature can overflow the float32 network; no real feature value comes near it.
NUMBER_LIMIT = 1e15
MAX_LABELS = 10_000
# No control characters: PostgreSQL refuses NUL in text, and none belongs in an id or a category.
_PRINTABLE = r"^[^\x00-\x1f\x7f]+$"

RequestId = Annotated[
    str,
    Strict(),
    Field(min_length=1, max_length=200, pattern=_PRINTABLE, description="Unique per prediction; the log's key."),
]
Number = Annotated[float, Strict(), Field(allow_inf_nan=False, ge=-NUMBER_LIMIT, le=NUMBER_LIMIT)]
Category = Annotated[str, Strict(), Field(min_length=1, max_length=200, pattern=_PRINTABLE)]


def _utc(value):
    # An event time without a zone is read as UTC, so the log's days do not depend on the server's zone.
    return value.replace(tzinfo=UTC) if isinstance(value, datetime) and value.tzinfo is None else value


EventTime = Annotated[
    datetime | None,
    AfterValidator(_utc),
    Field(
        default=None,
        description="When the predicted event happens (e.g. the flight's scheduled departure), ISO 8601; "
        "monitoring's daily series use it, else the time of the request. Without a zone it is read as UTC.",
    ),
]
Reason = Annotated[str, Strict(), Field(min_length=1, max_length=2_000, description="Kept in the audit log.")]


def _version_text(value):
    # Registry versions are numbers; clients write 2 as often as "2".
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


# A registered version's number, as the registry gives it: the only form a version is accepted or loaded by.
VERSION_NUMBER = r"[1-9][0-9]{0,9}"
Version = Annotated[str, BeforeValidator(_version_text), Strict(), Field(pattern=f"^{VERSION_NUMBER}$")]
Variant = Annotated[str, Strict(), Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Label(_Body):
    request_id: RequestId
    label: Annotated[int, Strict(), Field(ge=0, le=1, description="The observed outcome: 1 delayed, 0 on time.")]


class FeedbackResponse(BaseModel):
    accepted: int
    duplicates: list[str] = Field(description="Ids labelled before with the same label: the first label stands.")


class ArmRequest(_Body):
    variant: Variant
    version: Version
    weight: Annotated[float, Strict(), Field(allow_inf_nan=False, description="Share of traffic; all sum to 1.")]


class RolloutChange(_Body):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{
            "arms": [{"variant": "champion", "version": "1", "weight": 0.9},
                     {"variant": "canary", "version": "2", "weight": 0.1}],
            "reason": "canary of v2 at 10%",
        }]}
    )  # fmt: skip

    arms: list[ArmRequest] = Field(min_length=1, max_length=20)
    reason: Reason


class RollbackRequest(_Body):
    reason: Reason


class Prediction(BaseModel):
    request_id: str
    score: float = Field(description="Probability of a delay.")
    variant: str = Field(description="The arm that served the record (the champion's when its own arm is not loaded).")
    model_version: str


class PredictResponse(BaseModel):
    domain: str
    predictions: list[Prediction]


class FailedRecord(BaseModel):
    request_id: str
    variant: str
    model_version: str


class PredictFailure(BaseModel):
    """A 500: the model raised (or returned no finite score) on valid records; they are logged with the error."""

    detail: str
    failed: list[FailedRecord]
    predictions: list[Prediction] = Field(description="The records of the batch that were scored.")


class ArmView(BaseModel):
    variant: str
    version: str
    weight: float
    loaded: bool
    problem: str | None = None


class RolloutView(BaseModel):
    domain: str
    model_name: str
    source: Literal["rollout", "champion alias", "none"]
    revision: int | None
    reason: str
    arms: list[ArmView]
    fallback: str | None = Field(description="variant@version taking the traffic of arms that are not loaded.")
    ready: bool
    problems: list[str]


class DomainReadiness(BaseModel):
    ready: bool
    serving: list[str] = Field(description="variant@version of each loaded arm.")
    problems: list[str]


class Readiness(BaseModel):
    ready: bool
    domains: dict[str, DomainReadiness]


class Message(BaseModel):
    detail: str


class LogWriterHealth(BaseModel):
    state: Literal["writing", "stalled", "stopped"]
    backlog: int  # predictions waiting to be written
    seconds_since_progress: float
    last_error: str | None = None


class Health(BaseModel):
    detail: str  # "alive", or why not
    log_writer: LogWriterHealth | None = None  # None until the server has started its writer


@dataclass(frozen=True)
class RequestModels:
    """The bodies whose fields depend on the config: the domains, the features and the batch size."""

    features: type[BaseModel]
    predict: type[BaseModel]
    feedback: type[BaseModel]


def domain_field(config: PipelineConfig) -> Any:
    """A domain value. The schema lists the configured ones; any other is answered with a 404 naming them."""
    domains = list(config.domains.values)
    return Annotated[str, Strict(), Field(min_length=1, max_length=200, json_schema_extra={"enum": domains})]


def request_models(config: PipelineConfig) -> RequestModels:
    domain_type = domain_field(config)
    # Fields are named f0, f1, ... with the feature as alias, so any column name works
    # (spaces, dashes, or a name such as `copy` that a pydantic model already has).
    fields: dict = {}
    for index, name in enumerate(config.data.features):
        kind = Number if name in config.data.numeric_features else Category
        fields[f"f{index}"] = (kind | None, Field(default=None, alias=name))
    feature_model = create_model("Features", __base__=_Body, __doc__="Raw feature values; absent means null.", **fields)

    class PredictRecord(_Body):
        request_id: RequestId | None = Field(default=None, description="Made by the server (uuid4) when absent.")
        features: feature_model
        event_time: EventTime

    example = {name: 1.0 if name in config.data.numeric_features else "X" for name in config.data.features}

    class PredictRequest(_Body):
        """Either a batch (`records`) or one record (`features`, optionally `request_id`)."""

        model_config = ConfigDict(
            json_schema_extra={"examples": [
                {"domain": domain, "records": [{"features": example}, {"features": {}}]}
                for domain in config.domains.values[:1]
            ]}
        )  # fmt: skip

        domain: domain_type
        records: list[PredictRecord] | None = Field(
            default=None, min_length=1, max_length=config.serving.max_batch_size
        )
        request_id: RequestId | None = None
        features: feature_model | None = None
        event_time: EventTime

        @model_validator(mode="after")
        def _one_form(self):
            if (self.records is None) == (self.features is None):
                raise ValueError("send either `records` (a batch) or `features` (one record), not both or neither")
            if self.records is not None and (self.request_id is not None or self.event_time is not None):
                raise ValueError("`request_id` and `event_time` belong inside each record of `records`")
            return self

        def event_times(self) -> list[float | None]:
            """Each record's event time as a POSIX timestamp (None where not sent)."""
            times = [self.event_time] if self.records is None else [r.event_time for r in self.records]
            return [None if t is None else t.timestamp() for t in times]

        def items(self) -> list[tuple[str | None, dict]]:
            """(request id, features by name) of every record."""
            if self.records is None:
                return [(self.request_id, self.features.model_dump(by_alias=True))]
            return [(r.request_id, r.features.model_dump(by_alias=True)) for r in self.records]

    class FeedbackRequest(_Body):
        domain: domain_type
        labels: list[Label] = Field(min_length=1, max_length=MAX_LABELS)

    return RequestModels(features=feature_model, predict=PredictRequest, feedback=FeedbackRequest)
