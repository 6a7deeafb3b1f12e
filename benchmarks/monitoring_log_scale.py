"""Monitoring's read of a large prediction log: the whole-history read of issue 5 against the streamed one.

    python benchmarks/monitoring_log_scale.py [--rows 100000 1000000] [--days 120] [--chunk-rows 5000]

For each size, a SQLite prediction log is filled (SQLAlchemy core inserts into the real
`predictions` and `feedback` tables) with that many predictions of one domain's version over
--days days, with the default config's 15 features, 80% of them labelled, the numeric features
slowly drifting. Then, in this one process, side by side:

- baseline, the whole-history read of issue 5: `read_log` of the whole history (up to
  monitoring.max_exact_rows) into one frame, its latest window_rows as the window, and the daily
  series grouped out of that frame;
- streamed: `read_log` of the window alone (ORDER BY/LIMIT), and the daily series from
  `stream_log_days`, one event day in memory at a time.

Both compute the same per-day figures (quality and drift against a 20k-row reference); their
windows and daily series are checked equal. Each path runs twice: once timed while a thread
samples the resident set (its peak growth over the start), once under tracemalloc (the peak of
Python's allocations; slower, so not timed). The streamed path runs first, so the baseline's
RSS growth, measured after memory the streamed path left to the allocator, errs low.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import itertools
import os
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sqlalchemy import Engine, insert

from domainflow.config import PipelineConfig
from domainflow.monitoring.check import daily_series
from domainflow.monitoring.reference import Reference
from domainflow.monitoring.window import LABEL, SCORE, LogWindow, days_in, read_log, stream_log_days
from domainflow.store.database import open_database
from domainflow.store.schema import feedback, predictions

DOMAIN, VERSION = "BENCH", "1"
START = pd.Timestamp("2013-01-01", tz="UTC").timestamp()
CARRIERS = np.array(["UA", "B6", "EV", "AA", "DL", "US", "MQ", "WN", "9E", "VX"], dtype=object)
DESTS = np.array([f"D{i:02d}" for i in range(60)], dtype=object)
INSERT_ROWS = 50_000
MIB = 2**20


def make_features(rows: int, drift: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    """The default config's features: numeric ones shifted by `drift` (per row), carrier and dest categorical."""
    config = PipelineConfig().data
    columns = {}
    for i, name in enumerate(config.numeric_features):
        values = rng.normal(10.0 * (i + 1) + drift * (i % 3), 3.0 + i % 4, rows).round(1)
        values[rng.random(rows) < 0.01] = np.nan
        columns[name] = values
    weights = np.linspace(1.0, 3.0, len(CARRIERS))
    columns["carrier"] = rng.choice(CARRIERS, rows, p=weights / weights.sum())
    columns["dest"] = rng.choice(DESTS, rows)
    return pd.DataFrame(columns)[config.features]


def scored(features: pd.DataFrame, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    signal = (features["distance"].fillna(10.0) - 10.0) / 3.0 + rng.normal(0.0, 1.0, len(features))
    score = 1 / (1 + np.exp(-signal.to_numpy()))
    return score, (rng.random(len(features)) < score).astype(int)


def fill_log(engine: Engine, rows: int, days: int, seed: int = 0) -> None:
    """`rows` predictions spread over `days` (ties and all), 80% of them labelled, written in batches."""
    rng = np.random.default_rng(seed)
    event_times = np.sort(START + rng.uniform(0, days * 86_400.0, rows))
    for begin in range(0, rows, INSERT_ROWS):
        at = event_times[begin : begin + INSERT_ROWS]
        features = make_features(len(at), drift=(at - START) / 86_400.0 / days * 4.0, rng=rng)
        score, label = scored(features, rng)
        records = features.astype(object).where(features.notna(), None).to_dict("records")
        ids = [f"r{begin + i}" for i in range(len(at))]
        prediction_rows = [
            {"request_id": rid, "domain": DOMAIN, "variant": "champion", "model_version": VERSION,
             "score": float(s), "latency_ms": 3.0, "created_at": float(t) - 3_600.0, "error": None,
             "features": f, "event_time": float(t)}
            for rid, s, t, f in zip(ids, score, at, records, strict=True)
        ]  # fmt: skip
        p = np.clip(score, 1e-6, 1 - 1e-6)
        loss = np.where(label == 1, -np.log(p), -np.log(1 - p))
        labelled = np.flatnonzero(rng.random(len(at)) < 0.8)
        feedback_rows = [{"request_id": ids[i], "label": int(label[i]), "loss": float(loss[i]),
                          "received_at": float(at[i])} for i in labelled]  # fmt: skip
        with engine.begin() as connection:
            connection.execute(insert(predictions), prediction_rows)
            connection.execute(insert(feedback), feedback_rows)


def make_reference(rows: int = 20_000) -> Reference:
    rng = np.random.default_rng(1)
    train = make_features(rows, drift=np.zeros(rows), rng=rng)
    train[SCORE], train[LABEL] = scored(train, rng)
    return Reference(DOMAIN, VERSION, train, train.head(5_000), data_matches=True)


def whole_history(engine: Engine, reference: Reference, config: PipelineConfig) -> tuple[LogWindow, pd.DataFrame]:
    """The whole-history read of issue 5: every row in one frame, the window and the days cut out of it."""
    monitoring = config.monitoring
    history = read_log(engine, DOMAIN, config.data.features, version=VERSION, history_days=monitoring.history_days,
                       max_rows=monitoring.max_exact_rows)  # fmt: skip
    return history.latest(monitoring.window_rows), daily_series(reference, days_in(history), config)


def streamed(
    engine: Engine, reference: Reference, config: PipelineConfig, chunk_rows: int
) -> tuple[LogWindow, pd.DataFrame]:
    monitoring = config.monitoring
    log = dict(version=VERSION, history_days=monitoring.history_days)
    window = read_log(engine, DOMAIN, config.data.features, **log, max_rows=monitoring.window_rows)
    days = stream_log_days(engine, DOMAIN, config.data.features, **log, chunk_rows=chunk_rows)
    return window, daily_series(reference, days, config)


def warm_up(engine: Engine, reference: Reference, config: PipelineConfig) -> None:
    """Both paths on a few rows, so neither pays the first call's lazy imports and caches in its figures."""
    read_log(engine, DOMAIN, config.data.features, version=VERSION, max_rows=100)
    daily_series(reference, itertools.islice(stream_log_days(engine, DOMAIN, config.data.features), 2), config)


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakResident:
    """The peak growth of this process's resident set over its size at the start, sampled every 5 ms."""

    def __enter__(self) -> PeakResident:
        self.start = self.peak = resident_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, resident_bytes())

    def __exit__(self, *_) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, resident_bytes())

    @property
    def growth_mib(self) -> float:
        return (self.peak - self.start) / MIB


def release_memory() -> None:
    """Collect garbage and hand freed heap back to the OS, so each path starts from the same floor."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc
        ctypes.CDLL("libc.so.6").malloc_trim(0)


@dataclass(frozen=True)
class Measured:
    result: tuple[LogWindow, pd.DataFrame]
    seconds: float
    rss_mib: float
    traced_mib: float


def measure(run: Callable[[], tuple[LogWindow, pd.DataFrame]]) -> Measured:
    release_memory()
    with PeakResident() as resident:
        started = time.perf_counter()
        result = run()
        seconds = time.perf_counter() - started
    del result
    release_memory()
    tracemalloc.start()
    result = run()
    traced = tracemalloc.get_traced_memory()[1] / MIB
    tracemalloc.stop()
    return Measured(result, seconds, resident.growth_mib, traced)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000], help="predictions in the log (sizes)")
    parser.add_argument("--days", type=int, default=120, help="days the predictions span")
    parser.add_argument("--chunk-rows", type=int, default=5_000, help="rows per chunk of the streamed read")
    args = parser.parse_args()

    config = PipelineConfig()
    reference = make_reference()
    print(f"one domain, {len(config.data.features)} features, 80% labelled, over {args.days} days; "
          f"window_rows={config.monitoring.window_rows:,}, reference {len(reference.train):,} rows, "
          f"chunk_rows={args.chunk_rows:,}\n", flush=True)  # fmt: skip
    header = (f"{'rows':>10}  {'path':<34}  {'days':>4}  {'seconds':>7}  {'peak MiB':>8}  {'RSS+ MiB':>8}  "
              f"{'time x':>6}  {'peak x':>6}  {'RSS x':>6}")  # fmt: skip
    lines = []
    with tempfile.TemporaryDirectory() as scratch:
        for rows in args.rows:
            engine = open_database(f"sqlite:///{scratch}/log-{rows}.db")
            started = time.perf_counter()
            fill_log(engine, rows, args.days)
            print(f"filled a log of {rows:,} predictions in {time.perf_counter() - started:.1f} s", flush=True)
            warm_up(engine, reference, config)
            new = measure(lambda engine=engine: streamed(engine, reference, config, args.chunk_rows))
            old = measure(lambda engine=engine: whole_history(engine, reference, config))
            (old_window, old_daily), (new_window, new_daily) = old.result, new.result
            pd.testing.assert_frame_equal(new_daily, old_daily, check_exact=True)
            pd.testing.assert_frame_equal(new_window.frame, old_window.frame.reset_index(drop=True), check_exact=True)
            print(f"  same window ({new_window.rows:,} rows) and daily series ({len(new_daily)} days): yes", flush=True)
            for name, figures in (("whole-history read of issue 5", old), ("window + streamed days", new)):
                lines.append(f"{rows:>10,}  {name:<34}  {len(figures.result[1]):>4}  {figures.seconds:>7.2f}  "
                             f"{figures.traced_mib:>8.1f}  {figures.rss_mib:>8.1f}  "
                             f"{figures.seconds / old.seconds:>6.2f}  {figures.traced_mib / old.traced_mib:>6.3f}  "
                             f"{figures.rss_mib / old.rss_mib:>6.3f}")  # fmt: skip
            engine.dispose()
    print(f"\npeak MiB: tracemalloc's peak of Python allocations; RSS+ MiB: peak resident growth; "
          f"x: against the baseline, the whole-history read of issue 5\n\n{header}")  # fmt: skip
    print("\n".join(lines))


if __name__ == "__main__":
    main()
