"""Optimization runs on the shared tiny network and on one with the default architecture."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from domainflow.config import OptimizationConfig, TrainingConfig
from domainflow.optimization import OptimizationResult, optimize_network


@pytest.fixture(scope="session")
def fast_optimization() -> OptimizationConfig:
    """The real defaults, with few latency repeats and a small calibration sample."""
    return OptimizationConfig(latency_repeats=5, calibration_rows=256)


@pytest.fixture(scope="session")
def default_width_network(learnable_split, fit_network_on, tmp_path_factory):
    """TrainingConfig's default architecture (two hidden layers, so INT8 activations get used), one epoch."""
    config = TrainingConfig(max_epochs=1, batch_size=256, seed=7)
    return fit_network_on(learnable_split, config, tmp_path_factory.mktemp("train-default-width"))


@pytest.fixture(scope="session")
def split_features(learnable_split):
    """(train features, validation features, validation labels)."""
    train, validation, pipeline = learnable_split
    return pipeline.transform(train), pipeline.transform(validation), validation["_label"].to_numpy()


def optimize_on(network, split_features, config: OptimizationConfig) -> OptimizationResult:
    train, validation, labels = split_features
    return optimize_network(network, train, validation, labels, config)


@pytest.fixture(scope="session")
def optimize_with(split_features) -> Callable[..., OptimizationResult]:
    """optimize_with(network, config): optimize_network on the learnable split."""
    return lambda network, config: optimize_on(network, split_features, config)


@pytest.fixture(scope="session")
def optimized_tiny(trained_network, split_features, fast_optimization) -> OptimizationResult:
    return optimize_on(trained_network, split_features, fast_optimization)


@pytest.fixture(scope="session")
def optimized_default_width(default_width_network, split_features, fast_optimization) -> OptimizationResult:
    return optimize_on(default_width_network, split_features, fast_optimization)


@pytest.fixture(scope="session", params=["tiny", "default_width"])
def optimized(request) -> OptimizationResult:
    """Each network's optimization result in turn."""
    return request.getfixturevalue(f"optimized_{request.param}")
