"""The prediction log and the feedback that joins it: what the canary and monitoring judge models by."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from sqlalchemy import Engine, and_, case, func, insert, literal, select

from domainflow.store.schema import feedback, predictions

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
    event_time: float | None = None
    key_id: str | None = None  # the API key that asked for it


@dataclass(frozen=True)
class FeedbackResult:
    """What became of a request's labels. Stored only when none is unknown or conflicting (all or nothing)."""

    accepted: int
    # Ids labelled before with the same label (or twice in the request): the first label stands.
    duplicates: list[str] = field(default_factory=list)
    # Ids with no logged (successful) prediction for this domain.
    unknown: list[str] = field(default_factory=list)
    # Ids labelled before with the other label: the first label stands, the second is refused.
    conflicts: list[str] = field(default_factory=list)
    # Ids whose prediction failed (logged with its error, no score): nothing to judge a label against.
    unscored: list[str] = field(default_factory=list)

    @property
    def refused(self) -> bool:
        return bool(self.unknown or self.conflicts or self.unscored)


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
            "features": r.features, "event_time": r.event_time, "key_id": r.key_id,
        }
        for r in records
    ]  # fmt: skip
    with engine.begin() as connection:
        connection.execute(insert(predictions), rows)


def logged_request_ids(engine: Engine, ids: Sequence[str]) -> list[str]:
    """Those of `ids` that the prediction log already holds."""
    found: list[str] = []
    with engine.connect() as connection:
        for start in range(0, len(ids), 500):  # bounded IN lists
            chunk = list(ids[start : start + 500])
            query = select(predictions.c.request_id).where(predictions.c.request_id.in_(chunk))
            found += connection.execute(query).scalars().all()
    return sorted(found)


def latest_labelled_event_time(engine: Engine, domain: str) -> float | None:
    """The latest event time (POSIX seconds) among the domain's labelled predictions; None without any."""
    query = (
        select(func.max(predictions.c.event_time))
        .select_from(predictions.join(feedback, feedback.c.request_id == predictions.c.request_id))
        .where(predictions.c.domain == domain)
    )
    with engine.connect() as connection:
        return connection.execute(query).scalar_one()


def log_loss(score: float, label: int) -> float:
    p = min(max(score, _EPS), 1 - _EPS)
    return -math.log(p) if label else -math.log(1 - p)


def log_losses(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """`log_loss` of each (score, label) pair: the per-prediction loss the log stores, for scores computed later."""
    p = np.clip(np.asarray(scores, dtype=float), _EPS, 1 - _EPS)
    return np.where(np.asarray(labels, dtype=float) > 0, -np.log(p), -np.log(1 - p))


def record_feedback(
    engine: Engine,
    domain: str,
    labels: Sequence[tuple[str, int]],
    received_at: float | None = None,
    key_id: str | None = None,
) -> FeedbackResult:
    """Join labels to logged predictions by request id, all or nothing: when any id is unknown, its prediction
    failed, or its label conflicts with the stored one, nothing is stored and the result names them.

    The first label of an id stands (a label is a fact about the past): the same label again is a duplicate,
    the other label a conflict. `key_id` is the API key that sent them, kept with each label.
    """
    received_at = time.time() if received_at is None else received_at
    wanted: dict[str, int] = {}
    duplicates: list[str] = []
    inconsistent: set[str] = set()  # both labels for one id in this request
    for request_id, label in labels:
        if request_id not in wanted:
            wanted[request_id] = int(label)
        elif wanted[request_id] == int(label):
            duplicates.append(request_id)
        else:
            inconsistent.add(request_id)
    if not wanted:
        return FeedbackResult(0, duplicates)
    with engine.begin() as connection:
        ids = list(wanted)
        scores: dict[str, float | None] = {}
        stored: dict[str, int] = {}
        for start in range(0, len(ids), 500):  # bounded IN lists
            chunk = ids[start : start + 500]
            scores.update(
                connection.execute(
                    select(predictions.c.request_id, predictions.c.score).where(
                        predictions.c.request_id.in_(chunk), predictions.c.domain == domain
                    )
                ).all()
            )
            stored.update(
                connection.execute(
                    select(feedback.c.request_id, feedback.c.label).where(feedback.c.request_id.in_(chunk))
                ).all()
            )
        unknown = sorted(rid for rid in wanted if rid not in scores)
        unscored = sorted(rid for rid in wanted if rid in scores and scores[rid] is None)
        conflicts = sorted(inconsistent | {rid for rid, label in wanted.items() if stored.get(rid, label) != label})
        duplicates += sorted(rid for rid, label in wanted.items() if stored.get(rid) == label)
        result = FeedbackResult(0, duplicates, unknown, conflicts, unscored)
        if result.refused:
            return result
        rows = [
            {"request_id": rid, "label": label, "loss": log_loss(scores[rid], label), "received_at": received_at,
             "key_id": key_id}
            for rid, label in wanted.items()
            if rid not in stored
        ]  # fmt: skip
        if rows:
            connection.execute(insert(feedback), rows)
    return FeedbackResult(len(rows), duplicates)


def labels_by_key(engine: Engine, domain: str, since: float, until: float | None = None) -> dict[str, int]:
    """How many labels of the domain's predictions made in [since, until) each API key sent ("-": none)."""
    window = [predictions.c.domain == domain, predictions.c.created_at >= since]
    if until is not None:
        window.append(predictions.c.created_at < until)
    query = (
        select(feedback.c.key_id, func.count())
        .select_from(predictions.join(feedback, feedback.c.request_id == predictions.c.request_id))
        .where(*window)
        .group_by(feedback.c.key_id)
    )
    with engine.connect() as connection:
        return {key_id or "-": int(count) for key_id, count in connection.execute(query).all()}


# The latency quantile is taken over each arm's most recent predictions of the window: enough for a
# stable p95, and a look costs the same at the millionth prediction as at the thousandth.
LATENCY_SAMPLE = 20_000


def arm_stats(
    engine: Engine, domain: str, since: float, until: float | None = None, latency_sample: int = LATENCY_SAMPLE
) -> dict[str, ArmStats]:
    """Per-variant counts, error rate, p95 latency and label quality of the predictions made in [since, until).

    Counts and loss moments are aggregated in SQL; the latency quantile is taken in numpy over each
    variant's latest `latency_sample` latencies (SQLite has no percentile function).
    """
    [stats] = stratified_arm_stats(engine, domain, [since], until)
    window = [predictions.c.domain == domain, predictions.c.created_at >= since]
    if until is not None:
        window.append(predictions.c.created_at < until)
    with engine.connect() as connection:
        for variant in list(stats):
            latest = (
                select(predictions.c.latency_ms)
                .where(*window, predictions.c.variant == variant)
                .order_by(predictions.c.created_at.desc())
                .limit(latency_sample)
            )
            values = connection.execute(latest).scalars().all()
            p95 = float(np.percentile(values, 95)) if values else None
            stats[variant] = replace(stats[variant], p95_latency_ms=p95)
    return stats


def stratified_arm_stats(
    engine: Engine, domain: str, boundaries: Sequence[float], until: float | None = None
) -> list[dict[str, ArmStats]]:
    """Per-variant figures in each window [b_i, b_i+1) (the last open up to `until`), in one query; no latencies.

    A canary's steps are such windows: inside one the weights are fixed, so both arms sample the
    same hours, while across steps the canary's share grows and its cumulative sample leans on
    later, possibly harder, hours. Comparing arms step by step keeps that out of the effect.
    """
    if not boundaries or any(b > a for a, b in zip(boundaries[1:], boundaries, strict=False)):
        raise ValueError(f"boundaries must be a non-empty ascending sequence, got {list(boundaries)}")
    created = predictions.c.created_at
    inner = [(created < bound, i) for i, bound in enumerate(boundaries[1:])]
    stratum = case(*inner, else_=len(boundaries) - 1) if inner else literal(0)
    window = [predictions.c.domain == domain, created >= boundaries[0]]
    if until is not None:
        window.append(created < until)
    query = (
        select(
            stratum.label("stratum"),
            predictions.c.variant,
            func.count().label("n"),
            func.sum(case((predictions.c.error.is_not(None), 1), else_=0)).label("errors"),
            func.count(feedback.c.request_id).label("labelled"),
            func.avg(feedback.c.loss).label("loss_mean"),
            func.avg(feedback.c.loss * feedback.c.loss).label("loss_sq"),
        )
        .select_from(predictions.outerjoin(feedback, feedback.c.request_id == predictions.c.request_id))
        .where(and_(*window))
        .group_by(stratum, predictions.c.variant)
    )
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    strata: list[dict[str, ArmStats]] = [{} for _ in boundaries]
    for row in rows:
        labelled = int(row.labelled)
        mean = None if row.loss_mean is None else float(row.loss_mean)
        var = None
        if labelled >= 2 and mean is not None:
            var = max(float(row.loss_sq) - mean * mean, 0.0) * labelled / (labelled - 1)
        strata[int(row.stratum)][row.variant] = ArmStats(
            variant=row.variant,
            predictions=int(row.n),
            errors=int(row.errors or 0),
            p95_latency_ms=None,
            labelled=labelled,
            loss_mean=mean,
            loss_var=var,
        )
    return strata
