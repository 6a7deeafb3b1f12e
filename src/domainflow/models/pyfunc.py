"""The registered model: feature pipeline + network behind MLflow's pyfunc interface.

`mlflow.pyfunc.load_model("models:/flight-delay-EWR@champion").predict(frame)`
takes raw rows (the schema's feature columns, numbers as doubles) and returns
delay probabilities.
The class must be importable where the model is loaded, so the serving
environment installs domainflow.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import joblib
import mlflow.pyfunc
import numpy as np
import pandas as pd
import torch

from domainflow.models.lightning import network_from_weights, predict_proba

MODEL_CODE = Path(__file__).with_name("delay_model_code.py")
PIPELINE_ARTIFACT = "feature_pipeline"
NETWORK_ARTIFACT = "network"


class DelayModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        self.pipeline = joblib.load(context.artifacts[PIPELINE_ARTIFACT])
        bundle = torch.load(context.artifacts[NETWORK_ARTIFACT], map_location="cpu", weights_only=True)
        self.net = network_from_weights(bundle["hparams"], bundle["state_dict"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> np.ndarray:
        return predict_proba(self.net, self.pipeline.transform(model_input))


def serving_requirements() -> list[str]:
    """Pinned from this environment: inferring them costs ~10 s per model."""
    packages = ["mlflow", "torch", "lightning", "scikit-learn", "pandas", "numpy", "joblib"]
    return [f"{name}=={importlib.metadata.version(name)}" for name in packages]
