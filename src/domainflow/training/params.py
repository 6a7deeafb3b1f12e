"""Tuned values over a training config: what a trial samples, and what the final training takes from the best."""

from __future__ import annotations

from domainflow.config import TrainingConfig

Params = dict[str, float | int | str]


def layers_key(sizes: list[int]) -> str:
    """Optuna's categorical choices must be primitives: [128, 64] is offered as "128x64"."""
    return "x".join(str(size) for size in sizes)


def training_overrides(params: Params) -> dict:
    """A trial's parameters as TrainingConfig fields."""
    overrides = dict(params)
    if "hidden_sizes" in overrides:
        overrides["hidden_sizes"] = [int(size) for size in str(overrides["hidden_sizes"]).split("x")]
    return overrides


def apply_best_params(training: TrainingConfig, best_params: Params) -> TrainingConfig:
    """The final training's config: the best trial's values over `training`; unchanged when none completed."""
    if not best_params:
        return training
    return TrainingConfig.model_validate({**training.model_dump(), **training_overrides(best_params)})
