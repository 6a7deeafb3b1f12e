"""Storage, sampler and pruner built from the config, and the errors a wrong storage gives."""

from __future__ import annotations

import optuna
import pytest

from domainflow.config import TuningConfig
from domainflow.tuning.study import (
    TuningStorageError,
    build_pruner,
    build_sampler,
    open_storage,
    storage_kind,
    summarize_study,
)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("studies.db", "is not a database URL"),
        ("nosuchdb://host/studies", "is not a database URL"),
        ("mysql://tuner:secret@127.0.0.1/studies", "driver for 'mysql' is not installed"),
        ("sqlite:////no/such/folder/studies.db", "cannot be opened: unable to open database file"),
        ("postgresql://tuner:secret@127.0.0.1:1/studies", "cannot be opened: connection failed"),
    ],
)
def test_bad_storage_gives_one_message_naming_the_field(url, reason):
    with pytest.raises(TuningStorageError) as caught:
        open_storage(url)

    message = str(caught.value)
    assert message.startswith("tuning.storage") and reason in message
    assert "secret" not in message and "\n" not in message


def test_storage_kind_names_the_backend_not_the_url():
    assert storage_kind(None) == "memory"
    assert storage_kind("sqlite:///studies.db") == "sqlite"
    assert storage_kind("postgresql+psycopg://tuner:secret@db:5432/studies") == "postgresql"


@pytest.mark.parametrize(
    ("pruner", "expected"),
    [
        ("median", optuna.pruners.MedianPruner),
        ("hyperband", optuna.pruners.HyperbandPruner),
        ("none", optuna.pruners.NopPruner),
    ],
)
def test_pruner_follows_the_config(pruner, expected):
    assert type(build_pruner(TuningConfig(pruner=pruner))) is expected


def first_draw(sampler: optuna.samplers.BaseSampler) -> float:
    study = optuna.create_study(sampler=sampler)
    return study.ask().suggest_float("x", 0, 1)


def test_workers_and_resumed_runs_draw_their_own_start_points():
    tuning = TuningConfig(sampler_seed=42)

    worker_0 = first_draw(build_sampler(tuning, worker=0, trials_before=0))

    assert first_draw(build_sampler(tuning, worker=0, trials_before=0)) == worker_0  # reproducible
    assert first_draw(build_sampler(tuning, worker=1, trials_before=0)) != worker_0
    assert first_draw(build_sampler(tuning, worker=0, trials_before=3)) != worker_0


def test_summary_needs_a_database_holding_the_study(tmp_path):
    with pytest.raises(TuningStorageError, match="in-memory study cannot be read"):
        summarize_study(None, "flight-delay-EWR-abc")
    with pytest.raises(TuningStorageError, match="holds no study named 'flight-delay-EWR-abc'"):
        summarize_study(f"sqlite:///{tmp_path}/studies.db", "flight-delay-EWR-abc")
