"""Multi-variant experiments: several registered versions share a domain's traffic; the log says which is best.

The split is a rollout with three or more arms (the first is the control). Quality is
the per-prediction log loss of labelled predictions, compared across all arms with
Holm-corrected Welch tests and the probability to be best
(`domainflow.evaluation.experiments.compare_variant_means`).
"""

from __future__ import annotations

from sqlalchemy import Engine

from domainflow.config import ExperimentConfig
from domainflow.evaluation.experiments import MeansVerdict, compare_variant_means
from domainflow.store.prediction_log import stratified_arm_stats
from domainflow.store.rollouts import Arm, Rollout, check_arms, set_rollout


class ExperimentError(ValueError):
    """An experiment that cannot be set up or judged; the message names why."""


def start_experiment(
    engine: Engine, domain: str, model_name: str, versions: dict[str, str], config: ExperimentConfig, actor: str
) -> Rollout:
    """Route the domain's traffic to `versions` (variant name -> model version) with `config.split`."""
    if not config.split:
        raise ExperimentError("experiment.split is empty: give each variant its share of traffic")
    missing = sorted(set(config.split) ^ set(versions))
    if missing:
        raise ExperimentError(f"experiment.split and the variants' versions name different variants: {missing}")
    arms = check_arms([Arm(name, versions[name], share) for name, share in config.split.items()])
    shares = ", ".join(f"{arm.variant}=v{arm.version} {arm.weight:.0%}" for arm in arms)
    return set_rollout(engine, domain, model_name, arms, f"experiment: {shares}", actor)


def analyze_experiment(
    engine: Engine, domain: str, variants: list[str], since: float, config: ExperimentConfig
) -> MeansVerdict:
    """Compare `variants` (the first is the control) on the labelled predictions logged since `since`."""
    # Counts and loss moments only: the latency sample arm_stats also reads is not needed here.
    [stats] = stratified_arm_stats(engine, domain, [since])
    short = [name for name in variants if stats.get(name) is None or stats[name].labelled < 2]
    if short:
        raise ExperimentError(
            f"variants {short} have fewer than 2 labelled predictions since the experiment began; wait for feedback"
        )
    rows = [stats[name] for name in variants]
    return compare_variant_means(
        [row.loss_mean for row in rows],
        [row.loss_var for row in rows],
        [row.labelled for row in rows],
        names=variants,
        alpha=config.alpha,
        min_detectable_effect=config.min_detectable_effect,
        power=config.power,
        lower_is_better=True,
    )
