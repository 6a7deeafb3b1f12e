"""First vs second `domainflow run` with unchanged inputs: the cost the cache saves.

    python benchmarks/cache_speedup.py                    # the default scenario
    python benchmarks/cache_speedup.py --config my.yaml   # any config

Each run is the real CLI in a fresh process (as a user runs it), in a fresh
DOMAINFLOW_HOME and PREFECT_HOME shared by both runs. Prints both wall times
and the ratio first/second.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
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
        second = timed_run(args, env)
    print(f"first run (cold):            {first:7.1f} s")
    print(f"second run (unchanged data): {second:7.1f} s")
    print(f"ratio first/second:          {first / second:7.2f}x")


if __name__ == "__main__":
    main()
