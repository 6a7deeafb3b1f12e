"""The gradient-boosting family: what a user would reach for first, on the same features as the network.

It is a candidate like the network (calibrated, gated, registered and served when it wins) and,
for a domain with no champion yet, the reference the candidates are gated against.
"""

from __future__ import annotations

import io

import joblib
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


def serialize_gradient_boosting(model: HistGradientBoostingClassifier) -> bytes:
    """The fitted model as the `.joblib` variant file serving loads (domainflow.models.predictors)."""
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    return buffer.getvalue()


class GradientBoostingPredictor:
    def __init__(self, model: HistGradientBoostingClassifier):
        self.model = model

    def predict(self, features: FeatureMatrix) -> np.ndarray:
        return baseline_proba(self.model, features).astype(np.float32)
