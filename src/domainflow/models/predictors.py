"""Loading a serialized variant into something that predicts: what serving calls.

Two formats, told apart by the file extension:

- `.pt`: a `torch.save` bundle {architecture, state_dict}, read back with
  `torch.load(weights_only=True)` (no arbitrary pickle) and rebuilt into
  TabularNet. The INT8 variants hold torchao tensors in the state_dict; those
  load with weights_only too once torchao is imported, and are assigned in place
  of the float weights. A `.pt2` (torch.export) file was tried and rejected: its
  graph JSON outweighs this network's weights, so the INT8 file came out larger
  than the FP32 one.
- `.onnx`: an ONNX model run by onnxruntime's CPU provider.
- `.joblib`: the gradient-boosting family, a fitted HistGradientBoostingClassifier, read
  with joblib like the feature pipeline beside it (a pickle: a server loads it only after the
  version's artifact digest matched, see domainflow.registry.integrity).

None needs the training code (Lightning) at serving time.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Protocol

import joblib
import numpy as np
import torch

from domainflow.data.features import FeatureMatrix
from domainflow.models.network import TabularNet

TORCH_FORMAT = "torch"
ONNX_FORMAT = "onnx"
SKLEARN_FORMAT = "sklearn"
SUFFIXES = {TORCH_FORMAT: ".pt", ONNX_FORMAT: ".onnx", SKLEARN_FORMAT: ".joblib"}
# Rows per forward pass: bounds memory for a large request.
CHUNK_ROWS = 8192


class Predictor(Protocol):
    def predict(self, features: FeatureMatrix) -> np.ndarray:
        """Delay probabilities, one per row."""
        ...


class TorchPredictor:
    """Eager torch; runs on torch's process-wide thread setting (torch.set_num_threads)."""

    def __init__(self, net: torch.nn.Module):
        self.net = net.eval()

    @torch.inference_mode()
    def predict(self, features: FeatureMatrix) -> np.ndarray:
        numeric, categorical = torch.from_numpy(features.numeric), torch.from_numpy(features.categorical)
        chunks = [
            torch.sigmoid(self.net(numeric[i : i + CHUNK_ROWS], categorical[i : i + CHUNK_ROWS])).numpy()
            for i in range(0, len(numeric), CHUNK_ROWS)
        ]
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)


class OnnxPredictor:
    """An onnxruntime session whose graph already ends in the sigmoid."""

    def __init__(self, session):
        self.session = session

    def predict(self, features: FeatureMatrix) -> np.ndarray:
        numeric = np.ascontiguousarray(features.numeric, dtype=np.float32)
        categorical = np.ascontiguousarray(features.categorical, dtype=np.int64)
        chunks = [
            self._run(numeric[i : i + CHUNK_ROWS], categorical[i : i + CHUNK_ROWS])
            for i in range(0, len(numeric), CHUNK_ROWS)
        ]
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)

    def _run(self, numeric: np.ndarray, categorical: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"numeric": numeric, "categorical": categorical})[0]


def serialize_network(net: TabularNet, architecture: dict) -> bytes:
    buffer = io.BytesIO()
    torch.save({"architecture": architecture, "state_dict": net.state_dict()}, buffer)
    return buffer.getvalue()


def import_torchao(purpose: str):
    """torchao.quantization, without the warnings logged on its import (CUDA-only kernels, pytree deprecations)."""
    quiet = [logging.getLogger(name) for name in ("torchao", "torch.utils._pytree")]
    levels = [logger.level for logger in quiet]
    for logger in quiet:
        logger.setLevel(logging.ERROR)
    try:
        import torchao.quantization
    except ImportError:
        raise ImportError(f"torchao is not installed: pip install 'torchao>=0.18' to {purpose}") from None
    finally:
        for logger, level in zip(quiet, levels, strict=True):
            logger.setLevel(level)
    return torchao.quantization


def _read_bundle(payload: bytes) -> dict:
    """weights_only load; torchao is imported first when the bundle holds its tensors (it registers them as safe)."""
    needed = torch.serialization.get_unsafe_globals_in_checkpoint(io.BytesIO(payload))
    if any(name.startswith("torchao.") for name in needed):
        import_torchao("load this variant's INT8 weights")
    return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)


def torch_predictor(payload: bytes) -> TorchPredictor:
    bundle = _read_bundle(payload)
    net = TabularNet(**bundle["architecture"])
    # assign=True puts the stored (possibly quantized) tensors in place of the float parameters.
    net.load_state_dict(bundle["state_dict"], assign=True)
    return TorchPredictor(net)


def onnx_predictor(payload: bytes | str, threads: int = 1) -> OnnxPredictor:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Fold the DequantizeLinear of INT8-stored weights into float weights once, at load, instead of
    # expanding them on every call (onnxruntime otherwise keeps them to fuse QDQ groups, which
    # dynamic quantization does not use).
    options.add_session_config_entry("session.disable_quant_qdq", "1")
    return OnnxPredictor(ort.InferenceSession(payload, options, providers=["CPUExecutionProvider"]))


def load_predictor(payload: bytes, format: str, threads: int = 1) -> Predictor:
    if format == TORCH_FORMAT:
        return torch_predictor(payload)
    if format == ONNX_FORMAT:
        return onnx_predictor(payload, threads)
    if format == SKLEARN_FORMAT:
        from domainflow.models.baseline import GradientBoostingPredictor

        return GradientBoostingPredictor(joblib.load(io.BytesIO(payload)))
    raise ValueError(f"unknown variant format {format!r}; known: {sorted(SUFFIXES)}")


def load_variant(path: Path, threads: int = 1) -> Predictor:
    """The predictor for a file written by `save_variant`; the extension says the format.

    `threads` sets onnxruntime's intra-op threads (1 is what the latencies were
    measured with); torch variants follow torch.get_num_threads().
    """
    path = Path(path)
    formats = {suffix: name for name, suffix in SUFFIXES.items()}
    if path.suffix not in formats:
        raise ValueError(f"{path}: unknown variant file type; expected one of {sorted(formats)}")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such variant file")
    return load_predictor(path.read_bytes(), formats[path.suffix], threads)
