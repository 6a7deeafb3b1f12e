from __future__ import annotations

from dataclasses import replace

import pytest

from domainflow.config import OptimizationConfig
from domainflow.optimization import VariantReport, select_variant
from domainflow.optimization.report import LATENCY_TIE

CONFIG = OptimizationConfig()


def measured(name: str, p50: float, size: int = 10_000, auc_drop: float = 0.0, parity: float = 0.0) -> VariantReport:
    """A handmade report: p50 in ms at every measured batch size."""
    return VariantReport(
        name=name,
        available=True,
        format="onnx" if name.startswith("onnx") else "torch",
        size_bytes=size,
        p50_ms={batch: p50 for batch in CONFIG.latency_batch_sizes},
        p95_ms={batch: 1.5 * p50 for batch in CONFIG.latency_batch_sizes},
        auc=0.8 - auc_drop,
        auc_drop=auc_drop,
        parity_max=parity,
        parity_mean=parity / 10,
    )


FP32 = measured("fp32", 1.0, size=60_000)


def test_picks_the_fastest_variant_that_qualifies():
    reports = [
        FP32,
        measured("onnx_fp32", 0.5, size=58_000),
        measured("dynamic_int8", 0.4, size=20_000),
        measured("onnx_int8", 0.3, size=16_000, auc_drop=0.02),
        measured("static_int8", 0.2, size=20_000, parity=0.2),
    ]
    name, reason = select_variant(reports, CONFIG)
    assert name == "dynamic_int8"
    assert reason.startswith("dynamic_int8: fastest qualifying at batch 256")
    assert "onnx_int8 (AUC drop 0.0200 > max_auc_drop 0.005)" in reason
    assert "static_int8 (max |p - p_fp32| 0.2000 > parity_tolerance 0.05)" in reason


@pytest.mark.parametrize(
    "others, why",
    [
        ([measured("onnx_int8", 0.2, auc_drop=0.01), measured("static_int8", 0.3, parity=0.06)], "no other variant"),
        ([VariantReport(name="dynamic_int8", available=False, reason="torchao is not installed")], "no other variant"),
        ([measured("onnx_fp32", 1.5)], "no qualifying variant was faster"),
    ],
    ids=["all-disqualified", "unavailable", "slower"],
)
def test_falls_back_to_fp32(others, why):
    name, reason = select_variant([FP32, *others], CONFIG)
    assert name == "fp32"
    assert reason.startswith("fp32 kept") and why in reason


def test_an_unavailable_variant_is_named_with_its_reason():
    reports = [FP32, VariantReport(name="static_int8", available=False, reason="torchao is not installed")]
    _, reason = select_variant(reports, CONFIG)
    assert "static_int8 (unavailable: torchao is not installed)" in reason


def test_a_latency_tie_goes_to_the_smaller_file():
    within = 0.5 * (1 + LATENCY_TIE / 2)
    beyond = 0.5 * (1 + LATENCY_TIE * 2)
    tied = [FP32, measured("onnx_fp32", 0.5, size=58_000), measured("onnx_int8", within, size=16_000)]
    assert select_variant(tied, CONFIG)[0] == "onnx_int8"
    apart = [FP32, measured("onnx_fp32", 0.5, size=58_000), measured("onnx_int8", beyond, size=16_000)]
    assert select_variant(apart, CONFIG)[0] == "onnx_fp32"


def test_the_serving_batch_size_decides():
    config = CONFIG.model_copy(update={"serving_batch_size": 1})
    fast_at_one = replace(measured("onnx_int8", 0.3), p50_ms={1: 0.3, 256: 5.0})
    assert select_variant([FP32, fast_at_one], config)[0] == "onnx_int8"
    assert select_variant([FP32, fast_at_one], CONFIG)[0] == "fp32"


def test_needs_the_fp32_reference():
    with pytest.raises(ValueError, match="fp32"):
        select_variant([measured("onnx_int8", 0.3)], CONFIG)
