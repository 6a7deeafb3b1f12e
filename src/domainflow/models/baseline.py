"""The baseline a user would reach for instead: gradient-boosted trees on the same features."""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier

from domainflow.config import BaselineConfig
from domainflow.data.features import FeatureMatrix, FeaturePipeline
from domainflow.data.split import TimeSplit


def _stack(features: FeatureMatrix) -> np.ndarray:
    return np.hstack([features.numeric, features.categorical.astype(np.float32)])


def train_baseline(
    pipeline: FeaturePipeline, split: TimeSplit, config: BaselineConfig, seed: int = 0
) -> HistGradientBoostingClassifier:
    """The baseline on the split's training rows, through the same features as the network."""
    return fit_baseline(pipeline.transform(split.train), split.labels("train"), config, seed)


def fit_baseline(
    train: FeatureMatrix, labels: np.ndarray, config: BaselineConfig, seed: int = 0
) -> HistGradientBoostingClassifier:
    width = train.numeric.shape[1]
    categorical = [width + i for i in range(train.categorical.shape[1])]
    model = HistGradientBoostingClassifier(
        max_iter=config.max_iter,
        learning_rate=config.learning_rate,
        max_leaf_nodes=config.max_leaf_nodes,
        categorical_features=categorical or None,
        early_stopping=True,
        random_state=seed,
    )
    return model.fit(_stack(train), labels)


def baseline_proba(model: HistGradientBoostingClassifier, features: FeatureMatrix) -> np.ndarray:
    return model.predict_proba(_stack(features))[:, 1]
