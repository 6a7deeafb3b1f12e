"""First vs second `domainflow run` with unchanged inputs: the cost the cache saves.

    python benchmarks/cache_speedup.py                    # the default scenario
    python benchmarks/cache_speedup.py --config my.yaml   # any config

Each run is the real CLI in a fresh process (as a user runs it), in a fresh
DOMAINFLOW_HOME and PREFECT_HOME shared by both runs: the whole `domainflow run`,
serving, the canary and the loop included. Prints both wall times, the second as a
share of the first (goal: at most 20 %), and the second run's Prefect cache hit rate:
its task runs answered from the cache (state "Cached") over all its task runs (goal:
at least 80 %), read from the Prefect database both runs wrote to.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path


def timed_run(args: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "domainflow.cli", "run", *args], env=env, capture_output=True, text=True
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"domainflow run failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return elapsed


def task_run_states(prefect_home: str, since: datetime) -> list[tuple[str, str]]:
    """(task name, state name) of every task run that started after `since`, from the runs' Prefect database."""
    os.environ["PREFECT_HOME"] = prefect_home
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"  # this process's own ephemeral server: no heartbeat
    os.environ.pop("PREFECT_API_URL", None)
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterStartTime

    states: list[tuple[str, str]] = []
    with get_client(sync_client=True) as client:
        while True:
            page = client.read_task_runs(
                task_run_filter=TaskRunFilter(start_time=TaskRunFilterStartTime(after_=since)),
                limit=200,
                offset=len(states),
            )
            states += [(task_name(run.name), run.state.name if run.state else "?") for run in page]
            if len(page) < 200:
                return states


def task_name(run_name: str) -> str:
    """A task run's name without the suffix Prefect adds to tell runs apart ("load_source-1a2")."""
    return re.sub(r"-[0-9a-f]{3}$", "", run_name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="YAML config (default: the embedded reference scenario)")
    options = parser.parse_args()
    args = ["--config", options.config] if options.config else []
    with tempfile.TemporaryDirectory(prefix="domainflow-bench-") as scratch:
        env = {
            **os.environ,
            "DOMAINFLOW_HOME": str(Path(scratch) / "home"),
            "PREFECT_HOME": str(Path(scratch) / "prefect"),
        }
        for inherited in ("PREFECT_API_URL", "PREFECT_RESULTS_LOCAL_STORAGE_PATH", "MLFLOW_TRACKING_URI"):
            env.pop(inherited, None)
        first = timed_run(args, env)
        second_started = datetime.now(UTC)
        second = timed_run(args, env)
        states = task_run_states(env["PREFECT_HOME"], second_started)
    cached = sum(state == "Cached" for _, state in states)
    share, rate = second / first, cached / max(len(states), 1)
    print(f"first run (cold):            {first:7.1f} s")
    print(f"second run (unchanged data): {second:7.1f} s")
    print(f"second / first:              {share:7.1%}  (goal <= 20%: {'met' if share <= 0.2 else 'not met'})")
    print(f"ratio first/second:          {first / second:7.2f}x")
    print(f"second run's cache hit rate: {rate:7.1%}  ({cached} of {len(states)} task runs answered from the cache;"
          f" goal >= 80%: {'met' if rate >= 0.8 else 'not met'})")  # fmt: skip
    other = Counter(f"{name} ({state})" for name, state in states if state != "Cached")
    print("its other task runs:")
    for name, count in sorted(other.items()):
        print(f"  {count:3d} x {name}")


if __name__ == "__main__":
    main()
