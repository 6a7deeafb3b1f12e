"""The prediction server over real HTTP: latency and throughput of /predict, one variant against a 50/50 rollout,
with API keys and rate limits on and off.

    python benchmarks/serving_latency.py                      # 5 rounds, EWR rows, 1 training epoch
    python benchmarks/serving_latency.py --rounds 9 --single 300
    python benchmarks/serving_latency.py --no-freeze          # the startup heap left to the cyclic GC

Trains the default network on EWR's training months (one epoch, for speed: the network's
size, not its quality, sets the latency), logs it twice and registers both runs as v1 and
v2 of two models: `one` (the champion alias, v1, takes all traffic) and `two` (a rollout of
v1 and v2 at 50/50, so a batch is split into two model calls). One server in this process
serves both domains; the client alternates between them round by round, so both see the
same machine load. Each request carries its own request ids, as a client that later sends
feedback does (the server checks them against the log). Figures: p50/p99 per request and
predictions per second, sequential requests from one client. The server freezes its startup
heap as `domainflow serve` does; --no-freeze shows what the full collections cost the p99.

Access: two servers in this process share the registry and the log, one checking an API key and
counting its rate limits on every request (`serving.authentication: keys`, the default), one open
(`none`, no limits). Their limits are set too high to refuse anything, so what is measured is the
cost of checking and counting, which does not depend on the limit. The client sends to them in turn,
request by request; the goal is a p50 overhead of at most 5 % for single records.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
import uuid
import warnings
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
from mlflow import MlflowClient

from domainflow.access.keys import PREDICTOR, create_key
from domainflow.config import PipelineConfig, build_config
from domainflow.data.domains import filter_domain
from domainflow.data.features import FeaturePipeline
from domainflow.data.sources import load_source
from domainflow.data.split import split_by_time
from domainflow.data.validation import LABEL_COLUMN, validate_rows
from domainflow.optimization.torch_variants import build_fp32
from domainflow.registry.integrity import register_model_version
from domainflow.registry.mlflow_registry import CHAMPION, RunRecord, log_run
from domainflow.serving.app import create_app
from domainflow.serving.server import serve_in_background
from domainflow.settings import Settings, quiet_environment
from domainflow.store.database import open_database
from domainflow.store.rollouts import Arm, set_rollout
from domainflow.training.trainer import train_network

ONE, TWO = "one", "two"  # domains: one variant, and two at 50/50
KEYS, OPEN = "keys", "open"  # the servers: every request's key checked and counted, and no key at all
# Counted, never reached: what a limit costs is the counting.
UNREACHED = {"requests_per_minute": 10**9, "records_per_minute": 10**12}


def stage(message: str, started: float) -> None:
    print(f"[{time.perf_counter() - started:6.1f} s] {message}", flush=True)


def json_rows(frame: pd.DataFrame, config: PipelineConfig) -> list[dict]:
    numeric = set(config.data.numeric_features)
    return [
        {k: None if pd.isna(v) else float(v) if k in numeric else str(v) for k, v in row.items()}
        for row in frame[config.data.features].to_dict("records")
    ]


def register_versions(config: PipelineConfig, settings: Settings, split, pipeline, network) -> None:
    """v1 and v2 (two runs of the same network) of both domains' models; champion = v1."""
    model_file = settings.home / "fp32.pt"
    model_file.write_bytes(build_fp32(network, pipeline.transform(split.validation)))
    sample = split.validation[config.data.features].head(200)
    client = MlflowClient(settings.tracking_uri)
    for key in ("bench-1", "bench-2"):
        record = RunRecord(
            experiment="serving-benchmark", run_name=key, run_key=key, params={}, metrics={}, tags={},
            pipeline=pipeline, model_file=model_file, signature_sample=sample,
            signature_scores=network.predict(pipeline, sample),
        )  # fmt: skip
        logged = log_run(settings.tracking_uri, settings.artifact_root, record)
        for domain in (ONE, TWO):
            register_model_version(settings.tracking_uri, config.registered_model_name(domain), logged, tags={})
    for domain in (ONE, TWO):
        client.set_registered_model_alias(config.registered_model_name(domain), CHAMPION, "1")
    arms = [Arm("champion", "1", 0.5), Arm("canary", "2", 0.5)]
    set_rollout(open_database(settings.database_url), TWO, config.registered_model_name(TWO), arms, "50/50", "bench")


def measure(clients: dict[str, httpx.Client], domain: str, rows: list[dict], batch: int, requests: int) -> dict:
    """{access: (per-request seconds, records per second)} of `requests` sequential calls to each server.

    The servers take turns request by request (who goes first alternates too), so both see the same load.
    """
    latencies: dict[str, list[float]] = {access: [] for access in clients}
    busy = dict.fromkeys(clients, 0.0)
    order = list(clients)
    for turn in range(requests):
        picked = [rows[i] for i in np.random.default_rng().integers(0, len(rows), size=batch)]
        for access in order if turn % 2 == 0 else order[::-1]:
            records = [{"request_id": uuid.uuid4().hex, "features": features} for features in picked]
            sent = time.perf_counter()
            response = clients[access].post("/predict", json={"domain": domain, "records": records})
            took = time.perf_counter() - sent
            response.raise_for_status()
            latencies[access].append(took)
            busy[access] += took
    return {access: (latencies[access], requests * batch / busy[access]) for access in clients}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="alternated rounds per domain and batch size")
    parser.add_argument("--single", type=int, default=200, help="single-record requests per round")
    parser.add_argument("--batched", type=int, default=20, help="requests of --batch-size records per round")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--no-freeze", action="store_true", help="leave the startup heap to the cyclic GC")
    options = parser.parse_args()
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")
    started = time.perf_counter()

    base = PipelineConfig()
    frame = load_source(base.data.source, base.source_columns())
    rows = validate_rows(filter_domain(frame, base.domains.column, "EWR"), base.data, base.validation)
    split = split_by_time(rows.valid, base.data.timestamp, LABEL_COLUMN, base.split)
    pipeline = FeaturePipeline.from_schema(base.data).fit(split.train)
    network = train_network(pipeline, split, base.training.model_copy(update={"max_epochs": options.epochs}))
    stage(f"trained {base.training.hidden_sizes} on {len(split.train):,} EWR rows, "
          f"validation AUC {network.best_val_auc:.4f}", started)  # fmt: skip

    serving = {"max_batch_size": options.batch_size}
    configs = {
        KEYS: build_config({"domains": {"values": [ONE, TWO]},
                            "serving": {**serving, "rate_limits": {PREDICTOR: UNREACHED}}}),
        OPEN: build_config({"domains": {"values": [ONE, TWO]},
                            "serving": {**serving, "authentication": "none", "rate_limits": {}}}),
    }  # fmt: skip
    config = configs[KEYS]
    with tempfile.TemporaryDirectory(prefix="serving-bench-") as home:
        home = Path(home)
        settings = Settings(home=home, tracking_uri=f"sqlite:///{home / 'mlflow.db'}",
                            artifact_root=(home / "artifacts").as_uri(),
                            database_url=f"sqlite:///{home / 'serving.db'}")  # fmt: skip
        quiet_environment(settings)
        register_versions(config, settings, split, pipeline, network)
        key = create_key(open_database(settings.database_url), PREDICTOR, ["*"], "benchmark", "benchmark").token
        stage("registered v1 and v2 of both models; made a predictor key", started)
        traffic = json_rows(split.test, config)
        results: dict[tuple[str, str, int], list] = {}
        throughput: dict[tuple[str, str, int], list] = {}
        del frame, rows, split  # as in `domainflow serve`, the training data is not in the server's heap
        apps = {access: create_app(configs[access], settings, freeze_heap=not options.no_freeze)
                for access in (KEYS, OPEN)}  # fmt: skip
        with (
            serve_in_background(apps[KEYS]) as keys_url,
            serve_in_background(apps[OPEN]) as open_url,
            httpx.Client(base_url=keys_url, headers={"Authorization": f"Bearer {key}"}) as keyed,
            httpx.Client(base_url=open_url) as anonymous,
        ):
            clients = {KEYS: keyed, OPEN: anonymous}
            heap = "frozen" if not options.no_freeze else "left to the cyclic GC"
            stage(f"serving at {keys_url} (keys) and {open_url} (open), startup heap {heap}: "
                  f"{keyed.get('/ready').json()['domains']}", started)  # fmt: skip
            for domain in (ONE, TWO):  # warm-up
                measure(clients, domain, traffic, options.batch_size, 3)
                measure(clients, domain, traffic, 1, 30)
            for _ in range(options.rounds):
                for batch, requests in ((1, options.single), (options.batch_size, options.batched)):
                    for domain in (ONE, TWO):
                        for access, (latencies, rate) in measure(clients, domain, traffic, batch, requests).items():
                            results.setdefault((access, domain, batch), []).extend(latencies)
                            throughput.setdefault((access, domain, batch), []).append(rate)
            stage(f"measured {options.rounds} alternated rounds", started)
        report(results, throughput, options.batch_size)


def report(results: dict, throughput: dict, batch_size: int) -> None:
    print(f"\n{'access':<7}{'records':>8}{'variants':>9}{'requests':>9}{'p50 ms':>8}{'p99 ms':>8}{'predictions/s':>14}")
    figures = {}
    for (access, domain, batch), latencies in sorted(results.items(), key=lambda item: (item[0][2], item[0][1:])):
        ms = np.array(latencies) * 1_000
        rate = float(np.median(throughput[(access, domain, batch)]))
        figures[(access, domain, batch)] = (np.percentile(ms, 50), np.percentile(ms, 99), rate)
        variants = 1 if domain == ONE else 2
        p50, p99, _ = figures[(access, domain, batch)]
        print(f"{access:<7}{batch:>8}{variants:>9}{len(ms):>9}{p50:>8.2f}{p99:>8.2f}{rate:>14,.0f}")
    print("\ncost of routing over two variants (two / one), keys on:")
    for batch in (1, batch_size):
        (p50_one, p99_one, rate_one), (p50_two, p99_two, rate_two) = (figures[(KEYS, ONE, batch)],
                                                                      figures[(KEYS, TWO, batch)])  # fmt: skip
        print(f"  batch {batch:<4} p50 {p50_two / p50_one:5.2f}x   p99 {p99_two / p99_one:5.2f}x   "
              f"throughput {rate_two / rate_one:5.2f}x")  # fmt: skip
    print("\ncost of keys and rate limits (keys / open), goal: p50 at most 1.05x for single records:")
    for batch in (1, batch_size):
        for domain in (ONE, TWO):
            p50_keys, p99_keys, _ = figures[(KEYS, domain, batch)]
            p50_open, p99_open, _ = figures[(OPEN, domain, batch)]
            verdict = ("met" if p50_keys / p50_open <= 1.05 else "NOT met") if batch == 1 else ""
            print(f"  batch {batch:<4} {domain}: p50 {p50_keys / p50_open:5.3f}x   p99 {p99_keys / p99_open:5.2f}x  "
                  f"{verdict}")  # fmt: skip


if __name__ == "__main__":
    main()
