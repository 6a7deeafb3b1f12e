"""What a served model saw: its predictions from the log, with their features, scores and labels.

The current window is a domain's latest predictions by one version; the daily series
group the same rows by the day of their event time (the flight's departure), falling
back to the time of the request for clients that send none.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sqlalchemy import Engine, func, select

from domainflow.serving.database import feedback, predictions

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
    max_rows: int = 1_000_000,
) -> LogWindow:
    """The domain's predictions over the `history_days` before its latest one, oldest first.

    `version`/`variant` keep one model's predictions. At most `max_rows` (the latest) are read:
    the log is read whole into memory here, which suits windows up to about a million rows.
    """
    at = func.coalesce(predictions.c.event_time, predictions.c.created_at)
    where = [predictions.c.domain == domain]
    if version is not None:
        where.append(predictions.c.model_version == version)
    if variant is not None:
        where.append(predictions.c.variant == variant)
    with engine.connect() as connection:
        newest = connection.execute(select(func.max(at)).where(*where)).scalar_one()
        if newest is None:
            return LogWindow(domain, version, _frame([], features))
        query = (
            select(
                predictions.c.features,
                predictions.c.score,
                predictions.c.latency_ms,
                predictions.c.error,
                predictions.c.variant,
                at.label(AT),
                feedback.c.label,
                feedback.c.loss,
            )  # fmt: skip
            .select_from(predictions.outerjoin(feedback, feedback.c.request_id == predictions.c.request_id))
            .where(*where, at >= newest - history_days * SECONDS_PER_DAY)
            .order_by(at.desc())
            .limit(max_rows)
        )
        rows = connection.execute(query).all()
    return LogWindow(domain, version, _frame(rows[::-1], features))


def _frame(rows, features: list[str]) -> pd.DataFrame:
    logged = pd.DataFrame.from_records([row.features or {} for row in rows], columns=features)
    values = {
        SCORE: np.array([row.score for row in rows], dtype=float),
        LABEL: np.array([np.nan if row.label is None else row.label for row in rows], dtype=float),
        LOSS: np.array([np.nan if row.loss is None else row.loss for row in rows], dtype=float),
        "latency_ms": np.array([row.latency_ms for row in rows], dtype=float),
        "error": [row.error for row in rows],
        "variant": [row.variant for row in rows],
        AT: pd.to_datetime(np.array([row.at for row in rows], dtype=float), unit="s"),
    }
    for name, column in values.items():
        logged[name] = column
    return logged


def daily_quality(window: LogWindow, min_rows: int = 50) -> pd.DataFrame:
    """Per event day: predictions, labelled, mean log loss and AUC of the labelled ones (NaN below `min_rows`)."""
    frame = window.frame
    if frame.empty:
        return pd.DataFrame(columns=["predictions", "labelled", "log_loss", "auc"])
    days = frame[AT].dt.floor("D")
    rows = []
    for day, part in frame.groupby(days):
        labelled = part.loc[part[LABEL].notna() & part[SCORE].notna()]
        enough = len(labelled) >= min_rows
        both = enough and labelled[LABEL].nunique() == 2
        rows.append({
            "day": day, "predictions": len(part), "labelled": len(labelled),
            "log_loss": float(labelled[LOSS].mean()) if enough else np.nan,
            "auc": float(roc_auc_score(labelled[LABEL], labelled[SCORE])) if both else np.nan,
        })  # fmt: skip
    return pd.DataFrame(rows).set_index("day")


def days_of(window: LogWindow, min_rows: int) -> list[tuple[pd.Timestamp, pd.DataFrame]]:
    """The window's event days with at least `min_rows` predictions, and their rows."""
    days = window.frame[AT].dt.floor("D")
    return [(day, part) for day, part in window.frame.groupby(days) if len(part) >= min_rows]
