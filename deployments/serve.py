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

ENVIRONMENTS = Path(__file__).parent


def environment_config(name: str) -> PipelineConfig:
    path = ENVIRONMENTS / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in ENVIRONMENTS.glob("*.yaml"))
        raise SystemExit(f"unknown environment {name!r}; known: {known}")
    return load_config(path)


def build_deployments(config: PipelineConfig) -> list:
    from domainflow.flows.lifecycle import run_lifecycle
    from domainflow.flows.promotion import promote_challenger
    from domainflow.flows.training import train_domain_model

    parameters = {"config": config.model_dump(mode="json")}
    return [
        run_lifecycle.to_deployment(name="weekly", cron="0 5 * * 1", parameters=parameters, tags=["domainflow"]),
        train_domain_model.to_deployment(
            name="on-demand", parameters={"domain": "EWR", **parameters}, tags=["domainflow"]
        ),
        promote_challenger.to_deployment(
            name="promote", parameters={"domain": "EWR", **parameters}, tags=["domainflow", "promotion"]
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="local", help="a YAML file in deployments/ without its suffix")
    args = parser.parse_args()
    from prefect import serve

    serve(*build_deployments(environment_config(args.env)))


if __name__ == "__main__":
    main()
