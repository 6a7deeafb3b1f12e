"""Shared fixtures for the unit tests: quiet engines, seeded synthetic flights, a trained tiny network."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from domainflow.config import DatasetSchema, TrainingConfig

QUIET_ENV = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "GX_ANALYTICS_ENABLED": "false",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
}
CARRIERS = ["AA", "B6", "DL", "UA", "EV"]
DESTS = ["ATL", "BOS", "LAX", "ORD", "MIA", "SFO"]


@pytest.fixture(scope="session", autouse=True)
def _quiet_engines():
    """No telemetry from MLflow / GX for the whole unit session; restored afterwards."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in QUIET_ENV.items():
            patch.setenv(key, value)
        yield


def make_flights(
    rows: int,
    seed: int = 0,
    start: str = "2013-01-01",
    end: str = "2013-12-31",
) -> pd.DataFrame:
    """Raw rows with every column of the default schema.

    arr_delay (and so the label arr_delay > 15) depends on the scheduled hour
    and the carrier, so a model can learn it.
    """
    rng = np.random.default_rng(seed)
    start_ts, end_ts = pd.Timestamp(start), pd.Timestamp(end)
    seconds = rng.integers(0, int((end_ts - start_ts).total_seconds()), size=rows)
    scheduled = (start_ts + pd.to_timedelta(seconds, unit="s")).floor("min")
    dep_hour = rng.uniform(5, 23, size=rows)
    carrier = rng.choice(CARRIERS, size=rows)
    signal = 3.0 * (dep_hour - 14) / 5 + np.where(carrier == "EV", 2.5, 0.0) + np.where(carrier == "DL", -1.5, 0.0)
    arr_delay = 15 + 12 * signal + rng.normal(0, 8, size=rows)
    return pd.DataFrame(
        {
            "distance": rng.integers(100, 2_500, size=rows),
            "sched_dep_hour": dep_hour,
            "sched_arr_hour": (dep_hour + rng.uniform(1, 5, size=rows)) % 24,
            "day_of_week": scheduled.dayofweek.to_numpy(),
            "temp": rng.uniform(10, 90, size=rows),
            "dewp": rng.uniform(0, 70, size=rows),
            "humid": rng.uniform(20, 100, size=rows),
            "wind_dir": rng.uniform(0, 360, size=rows),
            "wind_speed": rng.uniform(0, 30, size=rows),
            "wind_gust": rng.uniform(0, 40, size=rows),
            "precip": rng.uniform(0, 0.5, size=rows),
            "pressure": rng.uniform(990, 1040, size=rows),
            "visib": rng.uniform(1, 10, size=rows),
            "carrier": carrier,
            "dest": rng.choice(DESTS, size=rows),
            "origin": rng.choice(["EWR", "JFK", "LGA"], size=rows),
            "scheduled_departure": scheduled,
            "arr_delay": arr_delay.round(0),
        }
    )


@pytest.fixture(scope="session")
def flights_factory() -> Callable[..., pd.DataFrame]:
    return make_flights


@pytest.fixture(scope="session")
def schema() -> DatasetSchema:
    return DatasetSchema()


def labelled(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(_label=(frame["arr_delay"] > 15).astype(np.int8))


@pytest.fixture(scope="session")
def learnable_split(schema):
    """(train, validation) labelled frames and a pipeline fitted on train."""
    from domainflow.data.features import FeaturePipeline

    train = labelled(make_flights(2_000, seed=1))
    validation = labelled(make_flights(600, seed=2))
    pipeline = FeaturePipeline.from_schema(schema).fit(train)
    return train, validation, pipeline


@pytest.fixture(scope="session")
def fast_training() -> TrainingConfig:
    return TrainingConfig(max_epochs=3, batch_size=64, learning_rate=1e-2, hidden_sizes=[16], seed=7)


def matrices_of(split):
    """The learnable split's training and validation rows as the network takes them."""
    from domainflow.data.features import TrainingMatrices

    train, validation, pipeline = split
    return TrainingMatrices(
        train=pipeline.transform(train),
        train_labels=train["_label"].to_numpy(),
        validation=pipeline.transform(validation),
        validation_labels=validation["_label"].to_numpy(),
        numeric_width=pipeline.numeric_width,
        cardinalities=pipeline.cardinalities,
    )


def fit_on(split, config: TrainingConfig, work_root=None):
    from domainflow.training.trainer import fit_classifier

    return fit_classifier(matrices_of(split), config, work_root)


@pytest.fixture(scope="session")
def learnable_matrices(learnable_split):
    return matrices_of(learnable_split)


@pytest.fixture(scope="session")
def fit_network_on() -> Callable:
    return fit_on


@pytest.fixture(scope="session")
def trained_network(learnable_split, fast_training, tmp_path_factory):
    """One 3-epoch single-process run, shared by the trainer and registry tests."""
    return fit_on(learnable_split, fast_training, tmp_path_factory.mktemp("train"))


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory):
    """A fresh SQLite MLflow store per test module: (tracking_uri, artifact_root).

    Nothing global points at it: the library must pass the URI everywhere.
    """
    root = tmp_path_factory.mktemp("mlflow")
    yield f"sqlite:///{root}/mlflow.db", root.joinpath("art").as_uri()


@pytest.fixture(scope="session")
def domain_candidates(tmp_path_factory):
    """One domain's stages on 600 synthetic rows, as the flow runs them, up to the scores.

    Tuning runs two one-epoch trials; optimization builds every variant with few latency repeats.
    """
    from types import SimpleNamespace

    from domainflow.candidates.scores import calibrate_families, score_candidates
    from domainflow.config import build_config
    from domainflow.data.features import fit_feature_pipeline
    from domainflow.data.split import split_by_time
    from domainflow.data.validation import LABEL_COLUMN, validate_rows
    from domainflow.models.baseline import train_baseline
    from domainflow.optimization.optimize import optimize_for_serving
    from domainflow.training.trainer import train_network
    from domainflow.tuning.search import tune_hyperparameters

    config = build_config({
        "training": {"max_epochs": 1, "batch_size": 64, "hidden_sizes": [8]},
        "tuning": {"n_trials": 2, "n_startup_trials": 1, "trial_max_epochs": 1,
                   "space": {"hidden_sizes": [[8], [16]], "embedding_dim": [4]}},
        "optimization": {"latency_repeats": 5, "calibration_rows": 64},
        "baseline": {"max_iter": 20},
        "gate": {"min_slice_rows": 10, "bootstrap_resamples": 200},
        "privacy": {"seed": 0},
        "calibration": {"min_rows": 40, "folds": 3},
    })  # fmt: skip
    work = tmp_path_factory.mktemp("candidates")
    outcome = validate_rows(make_flights(600, seed=31), config.data, config.validation)
    split = split_by_time(outcome.valid, config.data.timestamp, LABEL_COLUMN, config.split)
    pipeline = fit_feature_pipeline(split, config.data)
    tuning = tune_hyperparameters(pipeline, split, config.training, config.tuning, "unit-study", work)
    network = train_network(pipeline, split, config.training, tuning.best_params, work)
    optimized = optimize_for_serving(pipeline, split, network, config.optimization)
    baseline = train_baseline(pipeline, split, config.baseline)
    families = calibrate_families(pipeline, split, optimized, baseline, config.calibration)
    candidate = score_candidates(pipeline, split, tuning, network, optimized, families)
    return SimpleNamespace(config=config, outcome=outcome, split=split, pipeline=pipeline, tuning=tuning,
                           network=network, optimized=optimized, baseline=baseline, scores=candidate.scores,
                           candidate=candidate)  # fmt: skip
