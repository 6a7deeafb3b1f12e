from __future__ import annotations

import numpy as np
import pytest
import torch

from domainflow.config import BaselineConfig
from domainflow.data.features import FeatureMatrix
from domainflow.evaluation.metrics import binary_metrics
from domainflow.models.baseline import baseline_proba, fit_baseline
from domainflow.models.lightning import TabularClassifier, network_from_weights, predict_proba
from domainflow.models.network import TabularNet


@pytest.fixture
def matrix():
    rng = np.random.default_rng(0)
    return FeatureMatrix(
        numeric=rng.normal(size=(50, 3)).astype(np.float32),
        categorical=rng.integers(0, 4, size=(50, 2)).astype(np.int64),
    )


def test_one_logit_per_row(matrix):
    net = TabularNet(numeric_width=3, cardinalities=[4, 4], embedding_dim=8, hidden_sizes=[16, 8])
    out = net(torch.from_numpy(matrix.numeric), torch.from_numpy(matrix.categorical))
    assert out.shape == (50,)


def test_embedding_width_is_capped_for_small_tables():
    net = TabularNet(numeric_width=2, cardinalities=[3, 200], embedding_dim=8, hidden_sizes=[4])
    assert [e.embedding_dim for e in net.embeddings] == [3, 8]
    assert net.mlp[0].in_features == 2 + 3 + 8


def test_numeric_only_network(matrix):
    net = TabularNet(numeric_width=3, cardinalities=[], hidden_sizes=[4])
    out = net(torch.from_numpy(matrix.numeric), torch.zeros((50, 0), dtype=torch.int64))
    assert out.shape == (50,)


def test_out_of_range_code_is_an_error(matrix):
    net = TabularNet(numeric_width=3, cardinalities=[2, 2], hidden_sizes=[4])
    with pytest.raises(IndexError):
        net(torch.from_numpy(matrix.numeric), torch.from_numpy(matrix.categorical))


def test_weights_round_trip_gives_same_predictions(matrix):
    torch.manual_seed(0)
    hparams = dict(numeric_width=3, cardinalities=[4, 4], embedding_dim=4, hidden_sizes=[8], dropout=0.5)
    module = TabularClassifier(**hparams)
    rebuilt = network_from_weights(hparams, module.state_dict())
    assert not rebuilt.training  # eval mode: dropout off, so predictions are deterministic
    first = predict_proba(rebuilt, matrix)
    np.testing.assert_array_equal(first, predict_proba(rebuilt, matrix))
    np.testing.assert_allclose(first, predict_proba(module.net, matrix), rtol=1e-6)
    assert first.shape == (50,)
    assert ((first > 0) & (first < 1)).all()


def test_predict_proba_batches_and_handles_empty(matrix):
    net = network_from_weights(
        dict(numeric_width=3, cardinalities=[4, 4], hidden_sizes=[8]),
        TabularClassifier(numeric_width=3, cardinalities=[4, 4], hidden_sizes=[8]).state_dict(),
    )
    whole = predict_proba(net, matrix)
    batched = predict_proba(net, matrix, batch_size=7)
    np.testing.assert_allclose(whole, batched, rtol=1e-6)
    empty = FeatureMatrix(np.zeros((0, 3), np.float32), np.zeros((0, 2), np.int64))
    assert predict_proba(net, empty).shape == (0,)


def test_baseline_learns_a_simple_rule():
    rng = np.random.default_rng(1)
    numeric = rng.normal(size=(400, 2)).astype(np.float32)
    categorical = rng.integers(1, 4, size=(400, 1)).astype(np.int64)
    labels = ((numeric[:, 0] > 0) ^ (categorical[:, 0] == 3)).astype(int)
    features = FeatureMatrix(numeric, categorical)
    model = fit_baseline(features, labels, BaselineConfig(max_iter=50), seed=0)
    scores = baseline_proba(model, features)
    assert scores.shape == (400,)
    assert binary_metrics(labels, scores)["auc"] > 0.95
    # The categorical column is declared categorical to the trees.
    assert model.is_categorical_.tolist() == [False, False, True]


def test_binary_metrics_values():
    labels = np.array([0, 0, 1, 1])
    perfect = binary_metrics(labels, np.array([0.1, 0.2, 0.8, 0.9]))
    assert perfect["auc"] == 1.0 and perfect["accuracy"] == 1.0
    assert perfect["brier"] == pytest.approx((0.01 + 0.04 + 0.04 + 0.01) / 4)
    # Scores of exactly 0 and 1 are clipped: the log loss stays finite.
    extreme = binary_metrics(labels, np.array([1.0, 1.0, 0.0, 0.0]))
    assert extreme["auc"] == 0.0 and np.isfinite(extreme["log_loss"])
    assert binary_metrics(labels, np.full(4, 0.5), threshold=0.6)["accuracy"] == 0.5
