"""Live traffic from held-out rows: predictions over HTTP now, their labels as feedback later.

The default data's months after `split.test_until` were seen by no model, so sending them
in time order is what production would have looked like. A label is a flight's arrival,
known only after the prediction: feedback is held back `feedback_delay_seconds`.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

import httpx
import numpy as np
import pandas as pd

from domainflow.config import DatasetSchema, PipelineConfig, ReplayConfig
from domainflow.data.split import TimeSplit
from domainflow.data.validation import LABEL_COLUMN
from domainflow.settings import ClientKeys, resolve_client_keys


class ReplayError(RuntimeError):
    """The server refused the replayed traffic; the message carries its answer."""


@dataclass(frozen=True)
class Traffic:
    """Rows to send as requests in order, the labels to send back as feedback, and how to encode them."""

    rows: pd.DataFrame
    labels: np.ndarray
    numeric: list[str]
    categorical: list[str]
    # The column sent as each record's `event_time` (None: the server's clock stands in).
    timestamp: str | None = None

    @classmethod
    def from_rows(cls, rows: pd.DataFrame, data: DatasetSchema) -> Traffic:
        """Validated rows of a split: their label column and the schema's features and timestamp."""
        return cls(rows, rows[LABEL_COLUMN].to_numpy(), data.numeric_features, data.categorical_features,
                   data.timestamp)  # fmt: skip

    def records(self, rows: pd.DataFrame) -> list[dict]:
        """`rows` (a slice of self.rows) as the records of a /predict batch, without request ids."""
        records = [{"features": features} for features in encode_records(rows, self.numeric, self.categorical)]
        if self.timestamp is not None:
            for record, at in zip(records, rows[self.timestamp], strict=True):
                if not pd.isna(at):
                    record["event_time"] = pd.Timestamp(at).isoformat()
        return records


@dataclass(frozen=True)
class ReplayPlan:
    """One domain's rows to replay to a server as its live traffic, and how fast (ReplayConfig)."""

    serving_url: str
    domain: str
    traffic: Traffic
    config: ReplayConfig

    @classmethod
    def held_out(
        cls, serving_url: str, domain: str, split: TimeSplit, config: PipelineConfig, until: datetime | None = None
    ) -> ReplayPlan:
        """The split's held-out rows (those before `until` when given), paced by `config.replay`."""
        rows = split.holdout
        if until is not None:
            rows = rows.loc[rows[config.data.timestamp] < until]
        return cls(serving_url, domain, Traffic.from_rows(rows, config.data), config.replay)


@dataclass(frozen=True)
class ReplayReport:
    domain: str
    sent: int
    labelled: int
    seconds: float
    by_variant: dict[str, int] = field(default_factory=dict)
    stopped_early: bool = False

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0


def encode_records(rows: pd.DataFrame, numeric: list[str], categorical: list[str]) -> list[dict]:
    """Rows as the API takes them: numbers as floats, categories as strings, missing as null."""
    columns = {}
    for name in numeric:
        values = rows[name].to_numpy(dtype=float)
        columns[name] = [None if math.isnan(v) else float(v) for v in values]
    for name in categorical:
        columns[name] = [None if pd.isna(v) else str(v) for v in rows[name].to_numpy()]
    return [dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)]


def _batches(
    rows: pd.DataFrame, labels: np.ndarray, size: int, limit: int
) -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
    """Held-out rows in order, cycled (with fresh ids) until `limit` rows are sent."""
    sent = 0
    while sent < limit:
        for start in range(0, len(rows), size):
            take = min(size, limit - sent)
            if take <= 0:
                return
            chunk = rows.iloc[start : start + take]
            yield chunk, labels[start : start + len(chunk)]
            sent += len(chunk)


def wait_until_ready(client: httpx.Client, domain: str, timeout: float = 120.0) -> None:
    """Until the server serves `domain`: another configured domain without a champion does not hold it up."""
    deadline = time.monotonic() + timeout
    answer = None
    while time.monotonic() < deadline:
        answer = client.get("/ready")
        if answer.status_code == 200 or _serves(answer, domain):
            return
        time.sleep(0.5)
    raise ReplayError(f"the server did not become ready for {domain} within {timeout:.0f}s: "
                      f"{answer.text if answer else ''}")  # fmt: skip


def _serves(readiness: httpx.Response, domain: str) -> bool:
    """/ready's body (with its 503 too) names each configured domain's readiness.

    A domain the server is not configured for counts as ready: its /predict then answers why.
    """
    try:
        return bool(readiness.json()["domains"].get(domain, {"ready": True})["ready"])
    except (ValueError, KeyError, TypeError, AttributeError):
        return False


# A 429 is waited out (its Retry-After) this many times before the replay gives up.
RATE_LIMITED_TRIES = 5


def _post(client: httpx.Client, path: str, body: dict, headers: dict[str, str]) -> httpx.Response:
    """POST, waiting out the key's rate limit as the server asks (Retry-After) instead of failing."""
    for _ in range(RATE_LIMITED_TRIES):
        answer = client.post(path, json=body, headers=headers)
        if answer.status_code != 429:
            return answer
        time.sleep(min(60.0, float(answer.headers.get("Retry-After", "1"))))
    return answer


def replay_traffic(
    base_url: str,
    domain: str,
    traffic: Traffic,
    config: ReplayConfig,
    stop: Callable[[], bool] | None = None,
    id_prefix: str | None = None,
    *,
    transport: httpx.BaseTransport | None = None,
    keys: ClientKeys | None = None,
) -> ReplayReport:
    """Send the traffic's rows as /predict batches and its labels as /feedback after the delay,
    until `stop()` or max_rows.

    `keys`: the predictor's and the labeller's API keys; by default DOMAINFLOW_PREDICTOR_KEY and
    DOMAINFLOW_LABELLER_KEY (`domainflow run` sets them to keys it creates for its own server).

    Request ids are `<prefix>-<n>`: unique per replay (the log is keyed by them) and, for a
    fixed prefix, the same ids each time, so a seeded replay routes the same way.
    """
    rows = traffic.rows
    if len(rows) == 0:
        raise ReplayError(f"no held-out rows to replay for {domain}: move split.test_until before the data's end")
    prefix = id_prefix or f"{domain}-{uuid.uuid4().hex[:10]}"
    pending: deque[tuple[float, list[dict]]] = deque()
    variants: Counter[str] = Counter()
    sent = labelled = 0
    started = time.monotonic()
    stopped = False
    keys = resolve_client_keys() if keys is None else keys
    with httpx.Client(base_url=base_url, timeout=60.0, transport=transport) as client:
        wait_until_ready(client, domain)

        def deliver(until: float) -> None:
            nonlocal labelled
            while pending and pending[0][0] <= until:
                _, items = pending.popleft()
                answer = _post(client, "/feedback", {"domain": domain, "labels": items}, keys.headers("labeller"))
                if answer.status_code != 200:
                    raise ReplayError(f"/feedback answered {answer.status_code}: {answer.text[:500]}")
                labelled += answer.json()["accepted"]

        for batch, batch_labels in _batches(rows, np.asarray(traffic.labels), config.batch_size, config.max_rows):
            if stop is not None and stop():
                stopped = True
                break
            ids = [f"{prefix}-{sent + i}" for i in range(len(batch))]
            records = [{"request_id": rid, **record} for rid, record in zip(ids, traffic.records(batch), strict=True)]
            answer = _post(client, "/predict", {"domain": domain, "records": records}, keys.headers("predictor"))
            if answer.status_code != 200:
                raise ReplayError(f"/predict answered {answer.status_code}: {answer.text[:500]}")
            variants.update(p["variant"] for p in answer.json()["predictions"])
            sent += len(ids)
            now = time.monotonic()
            items = [{"request_id": rid, "label": int(y)} for rid, y in zip(ids, batch_labels, strict=True)]
            pending.append((now + config.feedback_delay_seconds, items))
            deliver(now)
            if config.rate_limit:
                time.sleep(max(0.0, len(ids) / config.rate_limit - (time.monotonic() - now)))
        deliver(math.inf)  # what is still owed: the labels exist, they just arrived late
    return ReplayReport(domain, sent, labelled, time.monotonic() - started, dict(variants), stopped)


class Replaying:
    """A replay running in a thread; `report` once it has ended (see `replaying`)."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.report: ReplayReport | None = None
        self.error: BaseException | None = None


@contextmanager
def replaying(plan: ReplayPlan, on_exhausted: Callable[[ReplayReport], None] | None = None) -> Iterator[Replaying]:
    """Replay in the background for the length of the `with` block; it stops when the block ends.

    `on_exhausted(report)` runs in the replay's thread when max_rows are sent before the block
    ends (no more traffic will come). An error of the replay is raised when the block ends.
    """
    running = Replaying()

    def work() -> None:
        try:
            running.report = replay_traffic(plan.serving_url, plan.domain, plan.traffic, plan.config,
                                            stop=running.stop.is_set)  # fmt: skip
            if not running.report.stopped_early and on_exhausted is not None:
                on_exhausted(running.report)
        except BaseException as error:  # handed to the caller's thread
            running.error = error

    thread = threading.Thread(target=work, name=f"replay-{plan.domain}", daemon=True)
    thread.start()
    try:
        yield running
    finally:
        running.stop.set()
        thread.join(timeout=120)
    if running.error is not None:
        raise running.error


def replay_held_out_months(
    serving_url: str, domain: str, split: TimeSplit, config: PipelineConfig, until: datetime
) -> ReplayReport | None:
    """The held-out rows before `until`, once each and as fast as the server answers (no canary bakes here).

    None when there are no such rows.
    """
    plan = ReplayPlan.held_out(serving_url, domain, split, config, until)
    if plan.traffic.rows.empty:
        return None
    fast = plan.config.model_copy(update={"rate_limit": None, "max_rows": len(plan.traffic.rows),
                                          "feedback_delay_seconds": 0.0})  # fmt: skip
    return replay_traffic(serving_url, domain, plan.traffic, fast)
