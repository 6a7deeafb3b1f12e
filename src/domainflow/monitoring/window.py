"""What a served model saw: its predictions from the log, with their features, scores and labels.

The current window is a domain's latest predictions by one version, read in one query; the
daily series take the same version's whole history, streamed one day of its event time (the
flight's departure) at a time, falling back to the time of the request for clients that send
none. So memory is bounded by the window and one day, not by the length of the history.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sqlalchemy import Connection, Engine, Select, func, select

from domainflow.config import PipelineConfig
from domainflow.store.schema import feedback, predictions

SECONDS_PER_DAY = 86_400.0

# The columns a window frame has besides the features.
SCORE, LABEL, LOSS, AT = "score", "label", "loss", "at"


@dataclass(frozen=True)
class LogWindow:
    """A domain's logged predictions: features, score, label (NaN until feedback), loss, time and latency."""

    domain: str
    version: str | None
    frame: pd.DataFrame

    @property
    def rows(self) -> int:
        return len(self.frame)

    @property
    def labelled(self) -> pd.DataFrame:
        return self.frame.loc[self.frame[LABEL].notna() & self.frame[SCORE].notna()]

    def latest(self, rows: int) -> LogWindow:
        """The `rows` most recent predictions (by event time)."""
        return LogWindow(self.domain, self.version, self.frame.tail(rows))

    @property
    def error_rate(self) -> float | None:
        return float(self.frame["error"].notna().mean()) if self.rows else None

    @property
    def p95_latency_ms(self) -> float | None:
        return float(np.percentile(self.frame["latency_ms"], 95)) if self.rows else None


def read_log(
    engine: Engine,
    domain: str,
    features: list[str],
    *,
    version: str | None = None,
    variant: str | None = None,
    history_days: float = 120,
    max_rows: int = 20_000,
) -> LogWindow:
    """The latest `max_rows` of the domain's predictions over the `history_days` before its latest one, oldest first.

    `version`/`variant` keep one model's predictions. Only those rows are read (ORDER BY ... LIMIT),
    so this suits a judged window; `stream_log_days` reads a whole history one day at a time.
    """
    where = _filters(domain, version, variant)
    with engine.connect() as connection:
        since = _history_start(connection, where, history_days)
        if since is None:
            return LogWindow(domain, version, _frame([], features))
        # The request id breaks ties in time, so the window and the stream order rows alike.
        query = _log_query(where, since).order_by(_logged_at.desc(), predictions.c.request_id.desc()).limit(max_rows)
        rows = connection.execute(query).all()
    return LogWindow(domain, version, _frame(rows[::-1], features))


def read_prediction_window(engine: Engine, domain: str, version: str, config: PipelineConfig) -> LogWindow:
    """The version's latest monitoring.window_rows predictions: the rows a check judges."""
    return read_log(engine, domain, config.data.features, version=version, history_days=config.monitoring.history_days,
                    max_rows=config.monitoring.window_rows)  # fmt: skip


def stream_log_days(
    engine: Engine,
    domain: str,
    features: list[str],
    *,
    version: str | None = None,
    variant: str | None = None,
    history_days: float = 120,
    chunk_rows: int = 5_000,
) -> Iterator[tuple[pd.Timestamp, LogWindow]]:
    """The same history as `read_log` without its limit, one event day at a time, oldest first.

    The rows arrive in event-time order in chunks of `chunk_rows` (a server-side cursor on
    PostgreSQL), so memory holds one chunk and one day however long the history is. A day's
    frame is parsed from all its rows at once, so its columns' types do not depend on where a
    chunk happened to end.
    """
    where = _filters(domain, version, variant)
    with engine.connect() as connection:
        since = _history_start(connection, where, history_days)
        if since is None:
            return
        query = _log_query(where, since).order_by(_logged_at, predictions.c.request_id)
        result = connection.execution_options(yield_per=chunk_rows).execute(query)
        day, rows = None, []
        for chunk in result.partitions():
            days = _times([row.at for row in chunk]).floor("D")
            starts = [0, *(np.flatnonzero(days[1:] != days[:-1]) + 1).tolist()]
            for begin, end in zip(starts, [*starts[1:], len(chunk)], strict=True):
                if rows and days[begin] != day:
                    yield day, LogWindow(domain, version, _frame(rows, features))
                    rows = []
                day = days[begin]
                rows.extend(chunk[begin:end])
        if rows:
            yield day, LogWindow(domain, version, _frame(rows, features))


def days_in(window: LogWindow) -> Iterator[tuple[pd.Timestamp, LogWindow]]:
    """A window already in memory split by event day, as `stream_log_days` yields a history."""
    for day, part in window.frame.groupby(window.frame[AT].dt.floor("D")):
        yield day, LogWindow(window.domain, window.version, part)


def day_quality(day: LogWindow, min_labelled: int) -> dict[str, float]:
    """A day's predictions, labelled, and the mean log loss and AUC of the labelled (NaN below `min_labelled`)."""
    labelled = day.labelled
    enough = len(labelled) >= min_labelled
    both = enough and labelled[LABEL].nunique() == 2
    return {
        "predictions": day.rows, "labelled": len(labelled),
        "log_loss": float(labelled[LOSS].mean()) if enough else np.nan,
        "auc": float(roc_auc_score(labelled[LABEL], labelled[SCORE])) if both else np.nan,
    }  # fmt: skip


# A prediction's time: its event time, or the time of the request for clients that send none.
_logged_at = func.coalesce(predictions.c.event_time, predictions.c.created_at)


def _filters(domain: str, version: str | None, variant: str | None) -> list:
    where = [predictions.c.domain == domain]
    if version is not None:
        where.append(predictions.c.model_version == version)
    if variant is not None:
        where.append(predictions.c.variant == variant)
    return where


def _history_start(connection: Connection, where: list, history_days: float) -> float | None:
    """The start of the `history_days` before the latest prediction; None when there is none."""
    newest = connection.execute(select(func.max(_logged_at)).where(*where)).scalar_one()
    return None if newest is None else newest - history_days * SECONDS_PER_DAY


def _log_query(where: list, since: float) -> Select:
    return (
        select(
            predictions.c.features,
            predictions.c.score,
            predictions.c.latency_ms,
            predictions.c.error,
            predictions.c.variant,
            _logged_at.label(AT),
            feedback.c.label,
            feedback.c.loss,
        )  # fmt: skip
        .select_from(predictions.outerjoin(feedback, feedback.c.request_id == predictions.c.request_id))
        .where(*where, _logged_at >= since)
    )


def _times(seconds: list[float]) -> pd.DatetimeIndex:
    return pd.to_datetime(np.array(seconds, dtype=float), unit="s")


def _frame(rows, features: list[str]) -> pd.DataFrame:
    logged = pd.DataFrame.from_records([row.features or {} for row in rows], columns=features)
    values = {
        SCORE: np.array([row.score for row in rows], dtype=float),
        LABEL: np.array([np.nan if row.label is None else row.label for row in rows], dtype=float),
        LOSS: np.array([np.nan if row.loss is None else row.loss for row in rows], dtype=float),
        "latency_ms": np.array([row.latency_ms for row in rows], dtype=float),
        "error": [row.error for row in rows],
        "variant": [row.variant for row in rows],
        AT: _times([row.at for row in rows]),
    }
    for name, column in values.items():
        logged[name] = column
    return logged
