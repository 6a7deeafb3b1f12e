"""Three versions share a domain's traffic; the prediction log and its feedback name the best one."""

from __future__ import annotations

import numpy as np
import pytest

from domainflow.canary.experiment import ExperimentError, analyze_experiment, start_experiment
from domainflow.config import ConfigError, ExperimentConfig, build_config
from domainflow.serving.routing import route
from domainflow.store.database import open_database
from domainflow.store.prediction_log import PredictionRecord, record_feedback, record_predictions
from domainflow.store.rollouts import read_rollout

SPLIT = {"control": 0.4, "sharper": 0.3, "blurred": 0.3}
VERSIONS = {"control": "1", "sharper": "2", "blurred": "3"}


@pytest.fixture
def engine(tmp_path):
    return open_database(f"sqlite:///{tmp_path / 'state.db'}")


def _simulate(engine, requests: int, seed: int) -> None:
    """Live traffic routed by the real router; each variant's scores are as informative as its name says."""
    rng = np.random.default_rng(seed)
    arms = read_rollout(engine, "EWR").arms
    signal = {"control": 1.0, "sharper": 1.6, "blurred": 0.3}
    labels = rng.random(requests) < 0.2
    noise = rng.normal(size=requests)
    records, feedback = [], []
    for i in range(requests):
        request_id = f"s{seed}-{i}"
        arm = route(request_id, arms)
        logit = -1.4 + signal[arm.variant] * (1.2 if labels[i] else -0.3) + 0.8 * noise[i]
        records.append(PredictionRecord(request_id, "EWR", arm.variant, arm.version, float(1 / (1 + np.exp(-logit))),
                                        2.0, float(i)))  # fmt: skip
        feedback.append((request_id, int(labels[i])))
    record_predictions(engine, records)
    record_feedback(engine, "EWR", feedback)


def test_three_variants_split_the_traffic_and_the_best_is_named(engine):
    # Planned for a large effect, so 6,000 predictions reach the plan and the winner may be named.
    config = ExperimentConfig(split=SPLIT, min_detectable_effect=0.08)
    rollout = start_experiment(engine, "EWR", "flight-delay-EWR", VERSIONS, config, actor="test")
    assert [(a.variant, a.weight) for a in rollout.arms] == list(SPLIT.items())

    _simulate(engine, 6_000, seed=0)
    verdict = analyze_experiment(engine, "EWR", list(SPLIT), since=0, config=config)

    assert verdict.decision == "winner" and verdict.winner == "sharper"
    rows = {row.name: row for row in verdict.variants}
    assert rows["sharper"].effect < 0 < rows["blurred"].effect  # log loss: lower is better
    assert rows["sharper"].significant and rows["sharper"].prob_best > 0.95
    assert sum(row.n for row in rows.values()) == 6_000
    assert rows["sharper"].ci_low < rows["sharper"].effect < rows["sharper"].ci_high


def test_too_little_data_says_how_many_more_samples_are_needed(engine):
    config = ExperimentConfig(split=SPLIT, min_detectable_effect=0.005)
    start_experiment(engine, "EWR", "flight-delay-EWR", VERSIONS, config, actor="test")
    _simulate(engine, 90, seed=1)
    verdict = analyze_experiment(engine, "EWR", list(SPLIT), since=0, config=config)
    assert verdict.decision == "continue" and verdict.winner is None
    assert verdict.additional_samples_per_variant > 1_000
    assert "a winner is named only at the planned" in verdict.reason and "more are needed" in verdict.reason


@pytest.mark.parametrize(
    ("split", "message"),
    [
        ({"a": 0.5, "b": 0.4, "c": 0.2}, "must sum to 1"),
        ({"a": 1.0}, "at least two variants"),
        ({"a": 1.2, "b": -0.2}, "must lie in [0, 1]"),
    ],
)
def test_splits_must_sum_to_one(split, message):
    with pytest.raises(ConfigError, match=r"experiment\.split") as error:
        build_config({"experiment": {"split": split}})
    assert message in str(error.value)


def test_an_experiment_needs_a_version_for_every_variant_and_feedback_to_judge(engine):
    config = ExperimentConfig(split=SPLIT)
    with pytest.raises(ExperimentError, match="blurred"):
        start_experiment(engine, "EWR", "m", {"control": "1", "sharper": "2"}, config, actor="test")
    start_experiment(engine, "EWR", "m", VERSIONS, config, actor="test")
    with pytest.raises(ExperimentError, match="labelled predictions"):
        analyze_experiment(engine, "EWR", list(SPLIT), since=0, config=config)
