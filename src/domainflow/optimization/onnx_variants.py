"""The ONNX variants: the network exported by torch.onnx (dynamo exporter) and run by onnxruntime.

onnx_int8 is onnxruntime's dynamic quantization of that graph, with the layer
plan of the torch INT8 variants: the first and last Gemm get INT8 weights that
a DequantizeLinear expands once at load (float activations), the hidden Gemms
become MatMulInteger on activations quantized per batch, and the embedding
tables are stored as INT8 (their Gathers are quantized too). Static
quantization with a CalibrationDataReader was tried and dropped: on the
default network it ran no faster than dynamic (0.115 against 0.119 ms at
batch 256), ties the file to a calibration sample, and with a random one moved
some validation probabilities by 0.28.

Both files are compacted the same way before their size is taken: tensors get
short names and the exporter's per-node metadata (stack traces, module paths)
is dropped. That metadata alone outweighs this network's INT8 weights.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper
from torch import nn

from domainflow.data.features import FeatureMatrix

if TYPE_CHECKING:  # the training stack (Lightning) stays out of serving imports
    from domainflow.models.lightning import TrainedNetwork

INPUT_NAMES = ["numeric", "categorical"]
OUTPUT_NAME = "probability"
LINEAR_OPS = ("Gemm", "MatMul")


class _Probability(nn.Module):
    """The network with its sigmoid, so the ONNX graph returns probabilities."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(numeric, categorical))


@contextmanager
def _quiet_converters() -> Iterator[None]:
    """The exporter warns about torchvision and onnxruntime's quantizer advises pre-processing: noise here."""
    exporters = [logging.getLogger(name) for name in ("torch.onnx", "onnxscript", "onnx_ir")]
    levels = [exporter.level for exporter in exporters]
    for exporter in exporters:
        exporter.setLevel(logging.ERROR)
    root = logging.getLogger()

    def below_error(record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR

    root.addFilter(below_error)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for exporter, level in zip(exporters, levels, strict=True):
            exporter.setLevel(level)
        root.removeFilter(below_error)


def export_network(network: TrainedNetwork, sample: FeatureMatrix) -> onnx.ModelProto:
    """The probability graph with a dynamic batch dimension; its linear nodes named linear_0, linear_1, ..."""
    rows = np.resize(np.arange(len(sample.numeric)), 2)  # two rows, so the batch size is not specialized to 1
    example = (torch.from_numpy(sample.numeric[rows]), torch.from_numpy(sample.categorical[rows]))
    batch = torch.export.Dim("batch")
    with _quiet_converters():
        program = torch.onnx.export(
            _Probability(network.build()).eval(),
            example,
            input_names=INPUT_NAMES,
            output_names=[OUTPUT_NAME],
            dynamic_shapes=({0: batch}, {0: batch}),
            dynamo=True,
            external_data=False,
            optimize=True,
            verbose=False,
        )
    model = program.model_proto
    for index, node in enumerate(n for n in model.graph.node if n.op_type in LINEAR_OPS):
        node.name = f"linear_{index}"
    return model


def compact_model(model: onnx.ModelProto) -> bytes:
    """Short tensor names, no node names, no metadata: the same graph in fewer bytes."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    kept = {value.name for value in (*graph.input, *graph.output)}
    short: dict[str, str] = {}

    def rename(name: str) -> str:
        return name if not name or name in kept else short.setdefault(name, f"t{len(short):x}")

    for tensor in graph.initializer:
        tensor.name = rename(tensor.name)
        tensor.doc_string = ""
        del tensor.metadata_props[:]
    for node in graph.node:
        node.input[:] = [rename(name) for name in node.input]
        node.output[:] = [rename(name) for name in node.output]
        node.name = node.doc_string = ""
        del node.metadata_props[:]
    for value in (*graph.input, *graph.output):
        value.doc_string = ""
        del value.metadata_props[:]
    del graph.value_info[:]
    del model.metadata_props[:]
    model.doc_string = graph.doc_string = ""
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _weight_only_int8(model: onnx.ModelProto, node: onnx.NodeProto) -> None:
    """Store `node`'s weight as INT8; a DequantizeLinear restores it (onnx_predictor folds it at load).

    One symmetric scale per tensor, as onnxruntime's quantizer gives the hidden
    layers: per output channel cut max |p - p_fp32| from 0.016 to 0.013 on the
    default network but cost 3% of the file.
    """
    initializers = {tensor.name: tensor for tensor in model.graph.initializer}
    name = node.input[1]
    weight = numpy_helper.to_array(initializers[name])
    scale = np.float32(max(float(np.abs(weight).max()), 1e-12) / 127)
    quantized = np.clip(np.round(weight / scale), -127, 127).astype(np.int8)
    model.graph.initializer.remove(initializers[name])
    model.graph.initializer.extend(
        [numpy_helper.from_array(quantized, f"{name}_int8"), numpy_helper.from_array(np.array(scale), f"{name}_scale")]
    )
    model.graph.node.insert(0, helper.make_node("DequantizeLinear", [f"{name}_int8", f"{name}_scale"], [name]))


def quantize_model(model: onnx.ModelProto) -> onnx.ModelProto:
    """onnxruntime's dynamic INT8 for the hidden layers and tables; weight-only INT8 for the end layers."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    linears = [node.name for node in model.graph.node if node.op_type in LINEAR_OPS]
    # The quantizer rewrites a Gemm as MatMul + Add under derived names; the end layers stay float there.
    excluded = [f"{name}{suffix}" for name in {linears[0], linears[-1]} for suffix in ("", "_MatMul", "_Add")]
    with tempfile.TemporaryDirectory(prefix="onnx-int8-") as scratch, _quiet_converters():
        target = Path(scratch) / "int8.onnx"
        quantize_dynamic(
            model, target, op_types_to_quantize=["Gemm", "MatMul", "Gather"],
            nodes_to_exclude=excluded, weight_type=QuantType.QInt8,
        )  # fmt: skip
        quantized = onnx.load(target)
    initializers = {tensor.name for tensor in quantized.graph.initializer}
    for node in [n for n in quantized.graph.node if n.op_type in LINEAR_OPS and n.input[1] in initializers]:
        _weight_only_int8(quantized, node)
    return quantized


def build_onnx_fp32(network: TrainedNetwork, calibration: FeatureMatrix) -> bytes:
    return compact_model(export_network(network, calibration))


def build_onnx_int8(network: TrainedNetwork, calibration: FeatureMatrix) -> bytes:
    return compact_model(quantize_model(export_network(network, calibration)))
