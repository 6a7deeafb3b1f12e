"""The torch variants: the FP32 reference and two INT8 networks quantized with torchao.

Why torchao `quantize_`: torch.ao.quantization (eager and FX) is deprecated and
scheduled for deletion (its quantize_dynamic still runs, and was slower than
FP32 here too), and PT2E moved to torchao. Of torchao's two paths,
PT2E + X86InductorQuantizer was measured on the default network (2 AVX2 cores,
no VNNI) and lost on every count: slower than FP32 in eager (0.38 / 0.65 ms at
batch 1 / 256 against 0.11 / 0.27), still slower after a 30 s torch.compile, and
its `.pt2` file (133 kB) larger than the FP32 state_dict (60 kB): the
serialized graph outweighs the weights of a network this small. `quantize_`
swaps the Linear weights for torchao tensors in place, so both INT8 variants
save and load like the FP32 one (state_dict + rebuild, weights_only) and keep
the size gain. Its eager int8 matmul is slow on CPUs without VNNI (about 2.3 ms
at batch 256 here); the latencies say so and selection passes it over.

Layer plan, the same for every INT8 variant: the first Linear reads the
standardized features, whose missing-value indicators reach about +-38, and the
last one writes the logit, so a per-tensor activation scale there costs the
most accuracy; both keep float activations with INT8 weights (weight-only).
The hidden Linears quantize activations too.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING

import torch
from torch import nn

from domainflow.data.features import FeatureMatrix
from domainflow.models.network import TabularNet
from domainflow.models.predictors import import_torchao, serialize_network

if TYPE_CHECKING:  # the training stack (Lightning) stays out of serving imports
    from domainflow.models.lightning import TrainedNetwork

ARCHITECTURE_KEYS = tuple(inspect.signature(TabularNet.__init__).parameters)[1:]


def network_architecture(network: TrainedNetwork) -> dict:
    """The TabularNet arguments among the hyperparameters (the optimizer's are left out)."""
    return {key: network.hparams[key] for key in ARCHITECTURE_KEYS if key in network.hparams}


def build_fp32(network: TrainedNetwork, calibration: FeatureMatrix) -> bytes:
    return serialize_network(network.build(), network_architecture(network))


def _torchao():
    return import_torchao("build the torch INT8 variants")


def _linear_layers(net: nn.Module) -> list[str]:
    return [name for name, module in net.named_modules() if isinstance(module, nn.Linear)]


def _quantize_ends_weight_only(net: nn.Module) -> list[str]:
    """INT8 weights, float activations for the first and last Linear; returns the hidden ones."""
    ao = _torchao()
    layers = _linear_layers(net)
    ends = {layers[0], layers[-1]}
    ao.quantize_(net, ao.Int8WeightOnlyConfig(set_inductor_config=False), filter_fn=lambda _, name: name in ends)
    return layers[1:-1]


def build_dynamic_int8(network: TrainedNetwork, calibration: FeatureMatrix) -> bytes:
    """Hidden layers: per-row (per-token) activation scales computed at run time, per-channel weights."""
    ao = _torchao()
    net = network.build()  # a fresh module: quantize_ changes it in place
    hidden = set(_quantize_ends_weight_only(net))
    config = ao.Int8DynamicActivationInt8WeightConfig(set_inductor_config=False)
    ao.quantize_(net, config, filter_fn=lambda _, name: name in hidden)
    return serialize_network(net, network_architecture(network))


@torch.inference_mode()
def _hidden_inputs(net: nn.Module, layers: list[str], calibration: FeatureMatrix) -> dict[str, torch.Tensor]:
    """What each hidden Linear receives on the calibration rows."""
    seen: dict[str, list[torch.Tensor]] = {name: [] for name in layers}
    hooks = [
        net.get_submodule(name).register_forward_pre_hook(lambda _, args, name=name: seen[name].append(args[0]))
        for name in layers
    ]
    try:
        net(torch.from_numpy(calibration.numeric), torch.from_numpy(calibration.categorical))
    finally:
        for hook in hooks:
            hook.remove()
    return {name: torch.cat(chunks) for name, chunks in seen.items()}


def build_static_int8(network: TrainedNetwork, calibration: FeatureMatrix) -> bytes:
    """Hidden layers: one activation scale and zero point per layer, fixed from the calibration rows."""
    ao = _torchao()
    from torchao.quantization.quant_primitives import choose_qparams_affine

    net = network.build()  # a fresh module: quantize_ changes it in place
    hidden = _quantize_ends_weight_only(net)
    for name, inputs in _hidden_inputs(net, hidden, calibration).items():
        # Asymmetric: hidden inputs are ReLU outputs (>= 0), so a symmetric range would waste half the codes.
        scale, zero_point = choose_qparams_affine(
            inputs, ao.MappingType.ASYMMETRIC, list(inputs.shape), torch.int8,
            scale_dtype=torch.float32, zero_point_dtype=torch.int8, keepdim=True,
        )  # fmt: skip
        config = ao.Int8StaticActivationInt8WeightConfig(
            act_quant_scale=scale,
            act_quant_zero_point=zero_point,
            granularity=[ao.PerTensor(), ao.PerRow()],
            act_mapping_type=ao.MappingType.ASYMMETRIC,
            set_inductor_config=False,
        )
        ao.quantize_(net, config, filter_fn=lambda _, module_name, name=name: module_name == name)
    return serialize_network(net, network_architecture(network))
