"""Scoring a request's records: one model call per arm, every record turned into a prediction-log row.

A model that raises (or returns no finite score) fails the records of its call only:
they are logged with the error, so the canary's guardrails see the failure, and the
request is answered with a 500 naming them (a fault of the server's model, not of the
input, which passed validation; retrying the same records would fail the same way, so
not a 503).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from domainflow.config import DatasetSchema, PipelineConfig
from domainflow.serving import schemas
from domainflow.serving.metrics import ServingMetrics
from domainflow.serving.models import LoadedModel
from domainflow.store.prediction_log import PredictionRecord


@dataclass
class PredictOutcome:
    predictions: list[schemas.Prediction] = field(default_factory=list)  # scored records, in request order
    failed: list[schemas.FailedRecord] = field(default_factory=list)
    records: list[PredictionRecord] = field(default_factory=list)  # for the log, scored or not
    errors: list[str] = field(default_factory=list)  # one line per failed model call

    def failure(self, domain: str) -> schemas.PredictFailure:
        detail = (
            f"{domain}: the model failed on {len(self.failed)} of {len(self.records)} records "
            f"({'; '.join(self.errors)}); they are in the prediction log with the error"
        )
        return schemas.PredictFailure(detail=detail, failed=self.failed, predictions=self.predictions)


def feature_frame(rows: Sequence[dict], data: DatasetSchema) -> pd.DataFrame:
    """Rows as the pyfunc model takes them: numbers as float64 (null as NaN), categories as str or None."""
    # Column by column: 3-5x faster than DataFrame.from_records + astype, which showed in single-record latency.
    columns = {name: np.array([row[name] for row in rows], dtype=np.float64) for name in data.numeric_features}
    columns |= {name: np.array([row[name] for row in rows], dtype=object) for name in data.categorical_features}
    return pd.DataFrame(columns, columns=data.features)


def predict_records(
    domain: str,
    ids: Sequence[str],
    features: Sequence[dict],
    picks: Sequence[tuple[str, LoadedModel]],
    config: PipelineConfig,
    metrics: ServingMetrics,
    event_times: Sequence[float | None] | None = None,
    *,
    key_id: str | None = None,
) -> PredictOutcome:
    """Score `features[i]` with `picks[i]` = (variant, model); records sharing a pick share one model call.

    `key_id`: the API key that asked, logged with each record.
    """
    groups: dict[tuple[str, str], list[int]] = {}
    for index, (variant, model) in enumerate(picks):
        groups.setdefault((variant, model.version), []).append(index)
    scores: list[float | None] = [None] * len(ids)
    errors: list[str | None] = [None] * len(ids)
    latency = [0.0] * len(ids)
    outcome = PredictOutcome()
    created_at = time.time()
    for (variant, version), indices in groups.items():
        model = picks[indices[0]][1]
        frame = feature_frame([features[i] for i in indices], config.data)
        started = time.perf_counter()
        try:
            values = np.asarray(model.model.predict(frame), dtype=np.float64).reshape(-1)
            if len(values) != len(indices):
                raise ValueError(f"returned {len(values)} scores for {len(indices)} rows")
            error = None
        except Exception as failure:  # the model's fault: logged per record and answered with a 500
            values, error = None, f"{type(failure).__name__}: {failure}"[:1_000]
        seconds = time.perf_counter() - started
        metrics.model_latency.labels(domain, variant, version).observe(seconds)
        metrics.predictions.labels(domain, variant, version).inc(len(indices))
        if error is not None:
            outcome.errors.append(f"{variant} {model.label}: {error}")
        for position, index in enumerate(indices):
            latency[index] = seconds * 1_000
            if error is None and not math.isfinite(values[position]):
                errors[index] = "the model returned a non-finite score"
            elif error is None:
                scores[index] = float(values[position])
            else:
                errors[index] = error
        bad = sum(errors[i] is not None for i in indices)
        if bad:
            metrics.prediction_errors.labels(domain, variant, version).inc(bad)
            if error is None:
                outcome.errors.append(f"{variant} {model.label}: non-finite scores on {bad} rows")
    for index, request_id in enumerate(ids):
        variant, model = picks[index]
        outcome.records.append(
            PredictionRecord(
                request_id=request_id, domain=domain, variant=variant, model_version=model.version,
                score=scores[index], latency_ms=latency[index], created_at=created_at, error=errors[index],
                features=dict(features[index]) if config.serving.log_features else None,
                event_time=event_times[index] if event_times is not None else None, key_id=key_id,
            )
        )  # fmt: skip
        answer = dict(request_id=request_id, variant=variant, model_version=model.version)
        if errors[index] is None:
            outcome.predictions.append(schemas.Prediction(score=scores[index], **answer))
        else:
            outcome.failed.append(schemas.FailedRecord(**answer))
    return outcome
