"""The prediction log's writer: requests queue their records, one thread writes them in batches.

A request only appends to a list; the thread writes whatever has gathered every
`interval` seconds, or as soon as `batch_rows` are waiting, in one transaction. So a
request never waits on the database, and a busy server makes one insert per tick
instead of one per request.

The log is keyed by request id. Ids are claimed before a request predicts (against
the ids still queued and those already in the log), so a repeated id is refused with
a 409 instead of failing the insert of a whole batch later.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from domainflow.store.prediction_log import PredictionRecord, logged_request_ids, record_predictions

logger = logging.getLogger(__name__)


class PredictionWriter:
    def __init__(
        self,
        engine: Engine,
        interval: float = 0.05,
        batch_rows: int = 512,
        max_backlog: int = 100_000,
        on_dropped: Callable[[int], None] = lambda rows: None,
    ):
        self.engine, self.interval, self.batch_rows, self.max_backlog = engine, interval, batch_rows, max_backlog
        self.on_dropped = on_dropped
        self._changed = threading.Condition()
        self._rows: list[PredictionRecord] = []
        self._claimed: set[str] = set()  # ids claimed by a request or queued, not yet in the log
        self._submitted = 0
        self._done = 0  # rows written or dropped
        self._flush_wanted = False
        self._stopping = False
        self._thread: threading.Thread | None = None

    @property
    def backlog(self) -> int:
        return len(self._rows)

    def claim(self, ids: Sequence[str]) -> list[str]:
        """Reserve `ids` for a request; returns the ids that are taken (and then reserves none)."""
        if not ids:
            return []
        with self._changed:
            taken = sorted(set(ids) & self._claimed)
            if taken:
                return taken
            self._claimed.update(ids)
        # Checked after the reservation, so an id written in between is seen in the log.
        taken = logged_request_ids(self.engine, ids)
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
            if len(self._rows) >= self.batch_rows:
                self._changed.notify_all()

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
                stopping = self._stopping
            if batch:
                self._write(batch)
            if stopping:
                with self._changed:
                    self._drop(self._rows, "the writer stopped before the database took them")
                    self._rows = []
                return

    def _write(self, batch: list[PredictionRecord]) -> None:
        try:
            record_predictions(self.engine, batch)
        except IntegrityError:
            # Another server process logged one of these ids; keep the rest.
            for record in batch:
                try:
                    record_predictions(self.engine, [record])
                except IntegrityError:
                    logger.warning("prediction log: request_id %r is already logged; dropped", record.request_id)
        except Exception:
            logger.exception("prediction log: writing %d rows failed; retrying", len(batch))
            with self._changed:
                self._rows[:0] = batch
                overflow = len(self._rows) - self.max_backlog
                if overflow > 0:
                    self._drop(self._rows[:overflow], f"the backlog passed {self.max_backlog} rows")
                    del self._rows[:overflow]
            time.sleep(min(1.0, self.interval * 10))
            return
        self._finish(batch)

    def _finish(self, batch: list[PredictionRecord]) -> None:
        with self._changed:
            self._done += len(batch)
            self._claimed.difference_update(r.request_id for r in batch)
            self._changed.notify_all()

    def _drop(self, batch: list[PredictionRecord], why: str) -> None:
        """Called holding the lock."""
        if batch:
            logger.error("prediction log: dropped %d rows: %s", len(batch), why)
            self.on_dropped(len(batch))
            self._done += len(batch)
            self._claimed.difference_update(r.request_id for r in batch)
            self._changed.notify_all()
