"""Serve domainflow's deployments from this process, with an environment's overrides.

    python deployments/serve.py --env local

No work pool or worker needed: Prefect's `serve` polls for scheduled and
UI-triggered runs and executes them here. The same deployments for a work
pool live in prefect.yaml.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from domainflow.config import PipelineConfig, load_config
from domainflow.flows.deployments import build_deployments, serve_deployments  # noqa: F401 - build_deployments for callers

ENVIRONMENTS = Path(__file__).parent


def environment_config(name: str) -> PipelineConfig:
    path = ENVIRONMENTS / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in ENVIRONMENTS.glob("*.yaml"))
        raise SystemExit(f"unknown environment {name!r}; known: {known}")
    return load_config(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="local", help="a YAML file in deployments/ without its suffix")
    args = parser.parse_args()
    serve_deployments(environment_config(args.env))


if __name__ == "__main__":
    main()
