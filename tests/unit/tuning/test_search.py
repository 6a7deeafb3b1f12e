"""The search on tiny data: budget, pruning, resume, and the config the final training gets."""

from __future__ import annotations

import pickle
import statistics
import time

import optuna
import pytest

from domainflow.config import SearchSpace, TrainingConfig, TuningConfig
from domainflow.training.params import apply_best_params
from domainflow.tuning import search as search_module
from domainflow.tuning import study as study_module
from domainflow.tuning.search import sample_params, trial_config, tune_network
from domainflow.tuning.study import SKIPPED_ATTR, WORKER_ATTR, TuningResult, open_study, summarize_study

SPACE = SearchSpace(learning_rate=(3e-3, 3e-2), embedding_dim=[4], hidden_sizes=[[16], [32, 16]])


def tuning_config(**overrides) -> TuningConfig:
    settings = dict(n_trials=3, n_startup_trials=2, pruner="none", trial_max_epochs=2, space=SPACE)
    return TuningConfig(**{**settings, **overrides})


@pytest.fixture(scope="module")
def training(fast_training) -> TrainingConfig:
    return fast_training.model_copy(update={"batch_size": 128})


@pytest.fixture(scope="module")
def tune(learnable_matrices, training):
    """tune_network on the learnable split: tune(tuning_config, study_name, **keywords)."""

    def run(tuning: TuningConfig, study_name: str = "study", **keywords) -> TuningResult:
        return tune_network(learnable_matrices, training=training, tuning=tuning, study_name=study_name, **keywords)

    return run


def test_trials_sample_the_space_and_spend_the_budget(tune, tmp_path):
    result = tune(tuning_config(n_trials=3), work_root=tmp_path)

    assert (result.n_trials, result.n_complete, result.n_pruned, result.n_failed) == (3, 3, 0, 0)
    assert [t.number for t in result.trials] == [0, 1, 2]
    for trial in result.trials:
        assert SPACE.learning_rate[0] <= trial.params["learning_rate"] <= SPACE.learning_rate[1]
        assert SPACE.dropout[0] <= trial.params["dropout"] <= SPACE.dropout[1]
        assert trial.params["hidden_sizes"] in {"16", "32x16"}
        assert sorted(trial.intermediate_values) == [0, 1]  # one val_auc per epoch of the trial budget
        assert trial.value == pytest.approx(max(trial.intermediate_values.values()))  # the best epoch, kept
        assert trial.datetime_start < trial.datetime_complete and trial.worker == 0
    best = max(result.trials, key=lambda t: t.value)
    assert result.best_value == best.value > 0.8
    assert result.best_params == best.params
    assert result.storage_kind == "memory"
    # The study's span runs from its first trial's start to its last trial's end.
    span = max(t.datetime_complete for t in result.trials) - min(t.datetime_start for t in result.trials)
    assert result.elapsed_seconds == pytest.approx(span.total_seconds())
    assert list(tmp_path.iterdir()) == []  # every trial's scratch directory is gone
    assert pickle.loads(pickle.dumps(result)) == result


def test_median_pruner_stops_trials_below_the_median(tune):
    # A learning-rate range down to 1e-5 gives some trials that learn too slowly to keep.
    space = SPACE.model_copy(update={"learning_rate": (1e-5, 3e-2)})
    tuning = tuning_config(n_trials=6, n_startup_trials=2, pruner="median", trial_max_epochs=3, space=space)

    result = tune(tuning)

    assert result.n_trials == 6 and result.n_pruned >= 1
    complete = [t for t in result.trials if t.state == "COMPLETE"]
    for trial in [t for t in result.trials if t.state == "PRUNED"]:
        epoch = max(trial.intermediate_values)
        assert epoch >= 1  # the first epoch is never judged
        earlier = [t.intermediate_values[epoch] for t in complete if t.number < trial.number]
        assert len(earlier) >= 2 and trial.intermediate_values[epoch] < statistics.median(earlier)
    assert result.best_value > 0.95


def test_pruned_trial_is_recorded_with_its_epochs_and_leaves_no_scratch(tune, training, tmp_path, monkeypatch):
    # Any AUC is below 1.0: every trial is pruned after its first epoch.
    monkeypatch.setattr(study_module, "build_pruner", lambda tuning: optuna.pruners.ThresholdPruner(lower=1.0))

    result = tune(tuning_config(n_trials=2, trial_max_epochs=3), work_root=tmp_path)

    assert [t.state for t in result.trials] == ["PRUNED", "PRUNED"]
    assert all(list(t.intermediate_values) == [0] for t in result.trials)
    assert (result.n_complete, result.n_pruned, result.best_params, result.best_value) == (0, 2, {}, None)
    assert apply_best_params(training, result.best_params) == training
    assert list(tmp_path.iterdir()) == []


def test_resumed_study_runs_only_the_remainder(tune, tmp_path):
    storage = f"sqlite:///{tmp_path}/studies.db"

    first = tune(tuning_config(n_trials=2, storage=storage), "flight-delay-EWR-abc")
    resumed = tune(tuning_config(n_trials=3, storage=storage), "flight-delay-EWR-abc")
    finished = tune(tuning_config(n_trials=3, storage=storage), "flight-delay-EWR-abc")

    assert first.n_trials == 2 and resumed.n_trials == 3
    assert resumed.trials[:2] == first.trials  # kept as they were, not run again
    assert finished.trials == resumed.trials  # the budget was spent: nothing ran
    assert summarize_study(storage, "flight-delay-EWR-abc") == resumed
    assert resumed.storage_kind == "sqlite"
    other = tune(tuning_config(n_trials=1, storage=storage), "flight-delay-JFK-abc")
    assert [t.number for t in other.trials] == [0]


def test_trial_opened_after_others_took_the_budget_is_skipped(tune, tmp_path, monkeypatch):
    # Two trials done by other workers after this one counted the study as empty:
    # the race MaxTrialsCallback alone would lose.
    tuning = tuning_config(n_trials=2, storage=f"sqlite:///{tmp_path}/studies.db")
    others = open_study(tuning, "race", worker=1)
    for value in (0.7, 0.8):
        others.add_trial(optuna.trial.create_trial(value=value, user_attrs={WORKER_ATTR: 1}))
    monkeypatch.setattr(search_module, "count_budget_used", lambda study: 0)

    result = tune(tuning, "race")

    assert [(t.number, t.state, t.worker) for t in result.trials] == [(0, "COMPLETE", 1), (1, "COMPLETE", 1)]
    opened = optuna.load_study(study_name="race", storage=tuning.storage).trials
    assert [(t.number, t.state.name) for t in opened] == [(0, "COMPLETE"), (1, "COMPLETE"), (2, "FAIL")]
    assert SKIPPED_ATTR in opened[2].user_attrs and opened[2].params == {}  # never trained


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
def test_trial_of_a_crashed_worker_is_failed_and_run_again(tune, tmp_path, monkeypatch):
    monkeypatch.setattr(study_module, "HEARTBEAT_SECONDS", 1)
    tuning = tuning_config(n_trials=2, storage=f"sqlite:///{tmp_path}/studies.db")
    crashed = open_study(tuning, "crash").ask()  # a worker takes a trial, samples it, then dies
    params = sample_params(crashed, SPACE)
    crashed.study._storage.record_heartbeat(crashed._trial_id)
    time.sleep(3.1)  # past the grace period of two heartbeats (SQLite's clock counts whole seconds)

    result = tune(tuning, "crash")

    states = {t.number: t.state for t in result.trials}
    assert states == {0: "FAIL", 1: "COMPLETE", 2: "COMPLETE"}
    assert result.trials[1].params == params  # the retry runs the same values
    assert (result.n_complete, result.n_failed) == (2, 1)


def test_no_trials_means_no_study(tune, tmp_path):
    result = tune(tuning_config(n_trials=0, storage=f"sqlite:///{tmp_path}/studies.db"))

    assert result == TuningResult(study_name="study", storage_kind="sqlite")
    assert not (tmp_path / "studies.db").exists()


def test_trial_config_runs_one_process_on_the_trial_budget():
    training = TrainingConfig(strategy="ddp", devices=4, num_nodes=2, max_epochs=20, limit_train_batches=1.0)
    tuning = TuningConfig(trial_max_epochs=3, trial_limit_train_batches=0.5)
    params = {"learning_rate": 1e-3, "weight_decay": 1e-4, "dropout": 0.2, "embedding_dim": 16, "hidden_sizes": "64x32"}

    config = trial_config(training, tuning, params)

    assert (config.devices, config.num_nodes, config.strategy) == (1, 1, "auto")
    assert (config.max_epochs, config.limit_train_batches) == (3, 0.5)
    assert (config.hidden_sizes, config.embedding_dim, config.dropout) == ([64, 32], 16, 0.2)


def test_best_params_override_only_what_was_searched():
    training = TrainingConfig(max_epochs=12, hidden_sizes=[8], seed=3)
    best = {"learning_rate": 4e-3, "weight_decay": 2e-5, "dropout": 0.15, "embedding_dim": 4, "hidden_sizes": "256x128"}
    result = TuningResult(study_name="s", storage_kind="memory", best_params=best, best_value=0.7, n_trials=1)

    final = apply_best_params(training, result.best_params)

    assert final.hidden_sizes == [256, 128] and final.learning_rate == 4e-3 and final.embedding_dim == 4
    assert (final.max_epochs, final.seed) == (12, 3)  # the final training keeps its own budget
    assert apply_best_params(training, TuningResult(study_name="s", storage_kind="memory").best_params) is training
