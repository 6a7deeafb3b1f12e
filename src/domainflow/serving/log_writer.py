"""The prediction log's writer: requests queue their records, one thread writes them in batches.

A request only appends to a list; the thread writes whatever has gathered every
`interval` seconds, or as soon as `batch_rows` are waiting, in one transaction. So a
request never waits on the database, and a busy server makes one insert per tick
instead of one per request.

The log is keyed by request id. Ids are claimed before a request predicts (against
the ids still queued and those already in the log), so a repeated id is refused with
a 409 instead of failing the insert of a whole batch later.

The thread survives any error: a batch the database refuses is queued again and retried,
and the queue is capped at `max_backlog` rows (the oldest beyond it are dropped and
counted). `health()` says whether the thread runs and keeps up: /health reports it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from domainflow.redaction import error_line
from domainflow.store.prediction_log import PredictionRecord, logged_request_ids, record_predictions

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WriterHealth:
    state: str  # "writing" (keeping up), "stalled" (rows wait, nothing written for a while) or "stopped"
    backlog: int  # rows waiting
    seconds_since_progress: float  # since the last batch was written (or the writer started)
    last_error: str | None  # the last database error, if the last attempt failed

    @property
    def alive(self) -> bool:
        return self.state != "stopped"


class PredictionWriter:
    def __init__(
        self,
        engine: Engine,
        interval: float = 0.05,
        batch_rows: int = 512,
        max_backlog: int = 100_000,
        on_dropped: Callable[[int], None] = lambda rows: None,
        stall_seconds: float = 60.0,
    ):
        self.engine, self.interval, self.batch_rows, self.max_backlog = engine, interval, batch_rows, max_backlog
        self.on_dropped, self.stall_seconds = on_dropped, stall_seconds
        self._progress_at = time.monotonic()
        self._last_error: str | None = None
        self._changed = threading.Condition()
        self._rows: list[PredictionRecord] = []
        # Rows taken by the thread and not yet written or queued again: part of the backlog. Uncounted, a write
        # hanging on the database (up to the statement timeout) showed a backlog of 0, so /health said "writing".
        self._in_flight = 0
        self._claimed: set[str] = set()  # ids claimed by a request or queued, not yet in the log
        self._submitted = 0
        self._done = 0  # rows written or dropped
        self._flush_wanted = False
        self._stopping = False
        self._thread: threading.Thread | None = None

    @property
    def backlog(self) -> int:
        return len(self._rows) + self._in_flight

    def claim(self, ids: Sequence[str]) -> list[str]:
        """Reserve `ids` for a request; returns the ids that are taken (and then reserves none)."""
        if not ids:
            return []
        with self._changed:
            taken = sorted(set(ids) & self._claimed)
            if taken:
                return taken
            self._claimed.update(ids)
        # Checked after the reservation, so an id written in between is seen in the log. Released on any
        # failure too: a database error here must not leave the ids reserved until the server restarts.
        try:
            taken = logged_request_ids(self.engine, ids)
        except BaseException:
            self.release(ids)
            raise
        if taken:
            self.release(ids)
        return taken

    def release(self, ids: Sequence[str]) -> None:
        """Give back ids a request claimed but will not log (it failed before predicting)."""
        with self._changed:
            self._claimed.difference_update(ids)

    def submit(self, records: Sequence[PredictionRecord]) -> None:
        with self._changed:
            self._rows.extend(records)
            self._claimed.update(r.request_id for r in records)
            self._submitted += len(records)
            self._cap_backlog()
            if len(self._rows) >= self.batch_rows:
                self._changed.notify_all()

    def health(self) -> WriterHealth:
        with self._changed:
            backlog, since = len(self._rows) + self._in_flight, time.monotonic() - self._progress_at
            error = self._last_error
        if self._thread is None or not self._thread.is_alive():
            state = "stopped"
        elif backlog and since > self.stall_seconds:
            state = "stalled"
        else:
            state = "writing"
        return WriterHealth(state, backlog, round(since, 1), error)

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every record submitted before this call is in the log (False on timeout)."""
        with self._changed:
            target = self._submitted
            if self._thread is None:
                return self._done >= target
            self._flush_wanted = True
            self._changed.notify_all()
            return self._changed.wait_for(lambda: self._done >= target, timeout)

    def start(self) -> None:
        self._progress_at = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="prediction-log-writer", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued, then stop the thread."""
        if self._thread is None:
            return
        if not self.flush(timeout):
            logger.error("prediction log: %d rows could not be written before shutdown", self.backlog)
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        self._thread.join(timeout)
        self._thread = None

    def _run(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(
                    lambda: self._stopping or self._flush_wanted or len(self._rows) >= self.batch_rows, self.interval
                )
                batch, self._rows, self._flush_wanted = self._rows, [], False
                self._in_flight = len(batch)
                stopping = self._stopping
            if batch:
                try:
                    self._write(batch)
                except Exception as error:  # whatever it is, the rows go back in the queue: the thread lives on
                    self._retry_later(batch, error)
            if stopping:
                with self._changed:
                    self._drop(self._rows, "the writer stopped before the database took them")
                    self._rows = []
                return

    def _write(self, batch: list[PredictionRecord]) -> None:
        """Write `batch`; a database error leaves the rows not yet written to the caller, to queue again."""
        try:
            record_predictions(self.engine, batch)
        except IntegrityError:
            # Another server process logged one of these ids; keep the rest, one by one.
            for index, record in enumerate(batch):
                try:
                    record_predictions(self.engine, [record])
                except IntegrityError:
                    logger.warning("prediction log: request_id %r is already logged; dropped", record.request_id)
                except Exception as error:
                    self._finish(batch[:index])
                    self._retry_later(batch[index:], error)
                    return
        self._finish(batch)

    def _retry_later(self, batch: list[PredictionRecord], error: Exception) -> None:
        # What the log and /health show: the driver's first line, without a URL's password; not the statement
        # and its rows.
        shown = error_line(error)
        logger.error("prediction log: writing %d rows failed (%s); retrying", len(batch), shown)
        with self._changed:
            self._last_error = shown
            self._in_flight -= len(batch)
            self._rows[:0] = batch
            self._cap_backlog()
        time.sleep(min(1.0, self.interval * 10))

    def _cap_backlog(self) -> None:
        """Called holding the lock: the oldest rows beyond max_backlog are dropped and counted."""
        overflow = len(self._rows) - self.max_backlog
        if overflow > 0:
            self._drop(self._rows[:overflow], f"the backlog passed {self.max_backlog} rows")
            del self._rows[:overflow]

    def _finish(self, batch: list[PredictionRecord]) -> None:
        with self._changed:
            self._done += len(batch)
            self._in_flight -= len(batch)
            self._claimed.difference_update(r.request_id for r in batch)
            self._progress_at, self._last_error = time.monotonic(), None
            self._changed.notify_all()

    def _drop(self, batch: list[PredictionRecord], why: str) -> None:
        """Called holding the lock."""
        if batch:
            logger.error("prediction log: dropped %d rows: %s", len(batch), why)
            self.on_dropped(len(batch))
            self._done += len(batch)
            self._claimed.difference_update(r.request_id for r in batch)
            self._changed.notify_all()
