"""The registered model: feature pipeline + the chosen family's variant + its calibration map, behind pyfunc.

`mlflow.pyfunc.load_model("models:/flight-delay-EWR@champion").predict(frame)`
takes raw rows (the schema's feature columns, numbers as doubles) and returns
calibrated delay probabilities. The model is the family the gates chose: the
network in whichever variant optimization chose to serve (FP32 or INT8 torch,
ONNX run by onnxruntime), or gradient boosting (scikit-learn); the file's
extension says which. Every variant's scores go through the same calibration
map, a file of the version like the others, so the artifact digest covers it.
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

from domainflow.calibration.fit import CalibratedPredictor
from domainflow.models.predictors import ONNX_FORMAT, SUFFIXES, TORCH_FORMAT, TorchPredictor, load_variant

MODEL_CODE = Path(__file__).with_name("delay_model_code.py")
PIPELINE_ARTIFACT = "feature_pipeline"
MODEL_ARTIFACT = "network_variant"  # the name predates the families: it holds whichever family's variant
CALIBRATION_ARTIFACT = "calibration"
# Versions registered before optimization existed hold the FP32 weights under this name.
LEGACY_NETWORK_ARTIFACT = "network"


class DelayModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        self.pipeline = joblib.load(context.artifacts[PIPELINE_ARTIFACT])
        if MODEL_ARTIFACT in context.artifacts:
            self.predictor = load_variant(Path(context.artifacts[MODEL_ARTIFACT]))
        else:
            self.predictor = _legacy_predictor(Path(context.artifacts[LEGACY_NETWORK_ARTIFACT]))
        # Versions registered before calibration serve their scores as they are.
        calibration = context.artifacts.get(CALIBRATION_ARTIFACT)
        self.predictor = CalibratedPredictor(self.predictor, joblib.load(calibration) if calibration else None)

    def predict(self, context, model_input: pd.DataFrame, params=None) -> np.ndarray:
        return self.predictor.predict(self.pipeline.transform(model_input))


def _legacy_predictor(path: Path) -> TorchPredictor:
    import torch

    from domainflow.models.lightning import network_from_weights

    bundle = torch.load(path, map_location="cpu", weights_only=True)
    return TorchPredictor(network_from_weights(bundle["hparams"], bundle["state_dict"]))


def serving_requirements(model_file: Path) -> list[str]:
    """Pinned from this environment (inferring them costs ~10 s per model), plus what the variant's format needs."""
    import torch

    packages = ["mlflow", "torch", "scikit-learn", "pandas", "numpy", "joblib"]
    suffix = Path(model_file).suffix
    if suffix == SUFFIXES[ONNX_FORMAT]:
        packages.append("onnxruntime")
    elif suffix == SUFFIXES[TORCH_FORMAT]:
        unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(model_file)
        if any(name.startswith("torchao.") for name in unsafe):
            packages.append("torchao")  # INT8 tensors of the torch variants
    return [f"{name}=={importlib.metadata.version(name)}" for name in packages]
