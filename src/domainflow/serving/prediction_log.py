"""The prediction log and the feedback that joins it: what the canary and monitoring judge models by."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import Engine, and_, case, func, insert, select

from domainflow.serving.database import feedback, predictions

# Scores are clipped before the log loss so a confident miss costs a large but finite amount.
_EPS = 1e-6


@dataclass(frozen=True)
class PredictionRecord:
    request_id: str
    domain: str
    variant: str
    model_version: str
    score: float | None
    latency_ms: float
    created_at: float
    error: str | None = None
    features: dict | None = None


@dataclass(frozen=True)
class FeedbackResult:
    accepted: int
    # Ids already labelled: the first label stands (a label is a fact about the past).
    duplicates: list[str] = field(default_factory=list)
    # Ids with no logged prediction (or a failed one) for this domain.
    unknown: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ArmStats:
    """One variant's figures over a window of the log."""

    variant: str
    predictions: int
    errors: int
    p95_latency_ms: float | None
    labelled: int
    loss_mean: float | None  # mean log loss of the labelled predictions
    loss_var: float | None  # its sample variance

    @property
    def error_rate(self) -> float:
        return self.errors / self.predictions if self.predictions else 0.0


def record_predictions(engine: Engine, records: Sequence[PredictionRecord]) -> None:
    if not records:
        return
    rows = [
        {
            "request_id": r.request_id, "domain": r.domain, "variant": r.variant, "model_version": r.model_version,
            "score": r.score, "latency_ms": r.latency_ms, "created_at": r.created_at, "error": r.error,
            "features": r.features,
        }
        for r in records
    ]  # fmt: skip
    with engine.begin() as connection:
        connection.execute(insert(predictions), rows)


def log_loss(score: float, label: int) -> float:
    p = min(max(score, _EPS), 1 - _EPS)
    return -math.log(p) if label else -math.log(1 - p)


def record_feedback(
    engine: Engine, domain: str, labels: Sequence[tuple[str, int]], received_at: float | None = None
) -> FeedbackResult:
    """Join labels to logged predictions by request id; unknown and repeated ids are reported, not stored."""
    received_at = time.time() if received_at is None else received_at
    wanted: dict[str, int] = {}
    duplicates: list[str] = []
    for request_id, label in labels:
        if request_id in wanted:
            duplicates.append(request_id)
        else:
            wanted[request_id] = int(label)
    if not wanted:
        return FeedbackResult(0, duplicates, [])
    with engine.begin() as connection:
        ids = list(wanted)
        scores: dict[str, float] = {}
        labelled: set[str] = set()
        for start in range(0, len(ids), 500):  # bounded IN lists
            chunk = ids[start : start + 500]
            scores.update(
                connection.execute(
                    select(predictions.c.request_id, predictions.c.score).where(
                        predictions.c.request_id.in_(chunk),
                        predictions.c.domain == domain,
                        predictions.c.score.is_not(None),
                    )
                ).all()
            )
            labelled.update(
                connection.execute(select(feedback.c.request_id).where(feedback.c.request_id.in_(chunk))).scalars()
            )
        rows = [
            {"request_id": rid, "label": label, "loss": log_loss(scores[rid], label), "received_at": received_at}
            for rid, label in wanted.items()
            if rid in scores and rid not in labelled
        ]
        if rows:
            connection.execute(insert(feedback), rows)
    duplicates += sorted(rid for rid in wanted if rid in labelled)
    unknown = sorted(rid for rid in wanted if rid not in scores)
    return FeedbackResult(len(rows), duplicates, unknown)


def arm_stats(engine: Engine, domain: str, since: float, until: float | None = None) -> dict[str, ArmStats]:
    """Per-variant counts, error rate, p95 latency and label quality of the predictions made in [since, until).

    Counts and loss moments are aggregated in SQL; the latency quantile is taken in numpy from
    the window's latencies (SQLite has no percentile function).
    """
    window = [predictions.c.domain == domain, predictions.c.created_at >= since]
    if until is not None:
        window.append(predictions.c.created_at < until)
    counts = (
        select(
            predictions.c.variant,
            func.count().label("n"),
            func.sum(case((predictions.c.error.is_not(None), 1), else_=0)).label("errors"),
            func.count(feedback.c.request_id).label("labelled"),
            func.avg(feedback.c.loss).label("loss_mean"),
            func.avg(feedback.c.loss * feedback.c.loss).label("loss_sq"),
        )
        .select_from(predictions.outerjoin(feedback, feedback.c.request_id == predictions.c.request_id))
        .where(and_(*window))
        .group_by(predictions.c.variant)
    )
    latencies = select(predictions.c.variant, predictions.c.latency_ms).where(and_(*window))
    with engine.connect() as connection:
        aggregates = connection.execute(counts).all()
        timing = connection.execute(latencies).all()
    by_variant: dict[str, list[float]] = {}
    for variant, latency in timing:
        by_variant.setdefault(variant, []).append(latency)
    stats = {}
    for row in aggregates:
        labelled = int(row.labelled)
        mean = None if row.loss_mean is None else float(row.loss_mean)
        var = None
        if labelled >= 2 and mean is not None:
            var = max(float(row.loss_sq) - mean * mean, 0.0) * labelled / (labelled - 1)
        values = by_variant.get(row.variant)
        stats[row.variant] = ArmStats(
            variant=row.variant,
            predictions=int(row.n),
            errors=int(row.errors or 0),
            p95_latency_ms=float(np.percentile(values, 95)) if values else None,
            labelled=labelled,
            loss_mean=mean,
            loss_var=var,
        )
    return stats
