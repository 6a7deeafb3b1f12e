from __future__ import annotations

import numpy as np
import pytest
import torch
from lightning.pytorch.strategies import DDPStrategy
from sklearn.metrics import roc_auc_score

from domainflow.config import TrainingConfig
from domainflow.models.lightning import TrainedNetwork
from domainflow.training.trainer import select_strategy


@pytest.fixture(scope="module")
def held_out_auc(flights_factory):
    """AUC of a trained network on fresh synthetic rows it never saw."""

    def score(network: TrainedNetwork, pipeline, seed: int = 99) -> float:
        frame = flights_factory(800, seed=seed)
        return roc_auc_score(frame["arr_delay"] > 15, network.predict(pipeline, frame))

    return score


def test_single_process_run_learns(trained_network, learnable_split, held_out_auc):
    _, _, pipeline = learnable_split
    assert trained_network.best_val_auc > 0.8
    assert trained_network.epochs_run == 3
    assert [int(row["epoch"]) for row in trained_network.history] == [0, 1, 2]
    assert all({"train_loss", "val_auc", "val_loss"} <= set(row) for row in trained_network.history)
    # The best validation AUC is the best epoch's, and the kept weights are that epoch's.
    assert trained_network.best_val_auc == pytest.approx(max(row["val_auc"] for row in trained_network.history))
    train, validation, _ = learnable_split
    kept_auc = roc_auc_score(validation["_label"], trained_network.predict(pipeline, validation))
    assert kept_auc == pytest.approx(trained_network.best_val_auc, abs=1e-4)
    assert held_out_auc(trained_network, pipeline) > 0.8


def test_trained_network_is_plain_values(trained_network):
    import pickle

    restored = pickle.loads(pickle.dumps(trained_network))
    assert restored.hparams == trained_network.hparams
    assert all(isinstance(v, torch.Tensor) and v.device.type == "cpu" for v in restored.state_dict.values())
    assert restored.state_dict and all(key.startswith("net.") for key in restored.state_dict)
    # The rebuilt network carries the same weights.
    first = next(iter(trained_network.state_dict))
    assert torch.equal(restored.build().state_dict()[first.removeprefix("net.")], trained_network.state_dict[first])


def test_same_seed_gives_identical_weights(trained_network, learnable_split, fast_training, fit_network_on, tmp_path):
    again = fit_network_on(learnable_split, fast_training, tmp_path)
    assert again.state_dict.keys() == trained_network.state_dict.keys()
    for key, value in trained_network.state_dict.items():
        assert torch.equal(value, again.state_dict[key]), key
    assert again.best_val_auc == trained_network.best_val_auc


def test_other_seed_gives_other_weights(learnable_split, fast_training, fit_network_on, trained_network):
    other = fit_network_on(learnable_split, fast_training.model_copy(update={"seed": 8, "max_epochs": 1}))
    first_layer = "net.mlp.0.weight"
    assert not torch.equal(other.state_dict[first_layer], trained_network.state_dict[first_layer])


def test_scratch_work_dir_is_removed(learnable_split, fast_training, fit_network_on, tmp_path):
    fit_network_on(learnable_split, fast_training.model_copy(update={"max_epochs": 1}), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_strategy_selection(monkeypatch):
    for name in ("TORCHELASTIC_RUN_ID", "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    assert select_strategy(TrainingConfig()) == "auto"
    assert select_strategy(TrainingConfig(strategy="ddp", devices=1)) == "auto"
    spawned = select_strategy(TrainingConfig(strategy="ddp", devices=2))
    assert isinstance(spawned, DDPStrategy) and spawned._start_method == "spawn"
    # "auto" lets the device count decide: two devices are never one process.
    assert isinstance(select_strategy(TrainingConfig(strategy="auto", devices=2)), DDPStrategy)
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "abc")
    joined = select_strategy(TrainingConfig(strategy="ddp", devices=1, num_nodes=2))
    assert isinstance(joined, DDPStrategy) and joined._start_method != "spawn"


def test_two_process_ddp_on_cpu_produces_a_working_model(learnable_split, fit_network_on, held_out_auc, tmp_path):
    config = TrainingConfig(
        strategy="ddp", devices=2, accelerator="cpu", max_epochs=2,
        batch_size=64, learning_rate=1e-2, hidden_sizes=[16], seed=3,
    )  # fmt: skip
    network = fit_network_on(learnable_split, config, tmp_path)
    _, _, pipeline = learnable_split
    assert network.epochs_run == 2
    assert len(network.history) == 2
    assert np.isfinite(network.best_val_auc)
    assert held_out_auc(network, pipeline, seed=123) > 0.75
