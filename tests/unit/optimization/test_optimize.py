from __future__ import annotations

import importlib.util
import pickle
import subprocess
import sys

import numpy as np
import pytest

from domainflow.config import OptimizationConfig
from domainflow.models.predictors import load_predictor, load_variant
from domainflow.optimization import optimize as optimize_module
from domainflow.optimization import save_variant

INT8_VARIANTS = ("dynamic_int8", "static_int8", "onnx_int8")
TORCHAO_INSTALLED = importlib.util.find_spec("torchao") is not None


def test_every_built_variant_predicts_what_fp32_predicts(optimized, split_features):
    _, validation, _ = split_features
    config = optimized.config
    torch_int8 = {"dynamic_int8", "static_int8"} if TORCHAO_INSTALLED else set()
    assert set(optimized.artifacts) == {"fp32", "onnx_fp32", "onnx_int8"} | torch_int8
    reference = load_predictor(optimized.artifacts["fp32"], "torch").predict(validation)
    for name, payload in optimized.artifacts.items():
        served = load_predictor(payload, optimized.formats[name]).predict(validation)
        assert served.shape == reference.shape
        assert np.abs(served - reference).max() <= config.parity_tolerance, name
        report = optimized.report(name)
        assert report.parity_max <= config.parity_tolerance
        assert report.auc_drop <= config.max_auc_drop


def test_int8_variants_are_smaller_than_fp32(optimized_default_width):
    sizes = {r.name: r.size_bytes for r in optimized_default_width.variants if r.available}
    for name in set(INT8_VARIANTS) & set(sizes):
        assert sizes[name] < sizes["fp32"], name
    assert sizes["onnx_int8"] < sizes["onnx_fp32"]
    # Four bytes per weight become one: at least 3x once the graph and float biases are counted.
    assert sizes["fp32"] / sizes["onnx_int8"] > 3


def test_the_chosen_variant_qualifies_and_the_result_is_plain_values(optimized):
    chosen = optimized.chosen_report
    assert chosen.available and optimized.chosen in optimized.artifacts
    assert chosen.auc_drop <= optimized.config.max_auc_drop
    assert optimized.reason.startswith(optimized.chosen)
    # Prefect caches the result by pickling it.
    copy = pickle.loads(pickle.dumps(optimized))
    assert copy.variants == optimized.variants and copy.artifacts == optimized.artifacts


def test_metrics_are_flat_numbers_and_the_table_lists_every_variant(optimized):
    metrics = optimized.metrics()
    for name in optimized.artifacts:
        for measure in ("size_bytes", "p50_ms_b1", "p95_ms_b256", "p50_ms_b256", "auc", "auc_drop", "parity_max"):
            assert np.isfinite(metrics[f"variant_{name}_{measure}"]), (name, measure)
    assert metrics["chosen_size_ratio"] == pytest.approx(
        optimized.report("fp32").size_bytes / optimized.chosen_report.size_bytes
    )
    table = optimized.to_markdown()
    assert all(f"| {name} |" in table for name in optimized.config.variants)
    assert "**chosen**" in table and optimized.reason in table


def test_each_saved_variant_loads_back_to_the_same_predictions(optimized, split_features, tmp_path):
    _, validation, _ = split_features
    for name, payload in optimized.artifacts.items():
        path = save_variant(optimized, name, tmp_path)
        assert path.name == f"{name}{'.onnx' if optimized.formats[name] == 'onnx' else '.pt'}"
        assert path.read_bytes() == payload
        in_memory = load_predictor(payload, optimized.formats[name]).predict(validation)
        np.testing.assert_allclose(load_variant(path).predict(validation), in_memory, atol=1e-6, err_msg=name)


def test_a_variant_that_cannot_be_built_is_reported_with_its_reason(
    trained_network, optimize_with, fast_optimization, monkeypatch, tmp_path
):
    def broken(network, calibration):
        raise RuntimeError("no quantizer for this graph")

    monkeypatch.setitem(optimize_module.VARIANT_BUILDERS, "onnx_int8", broken)
    config = fast_optimization.model_copy(update={"variants": ["fp32", "onnx_int8"]})
    result = optimize_with(trained_network, config)

    report = result.report("onnx_int8")
    assert not report.available and "no quantizer for this graph" in report.reason
    assert result.chosen == "fp32" and "onnx_int8 (unavailable" in result.reason
    assert "onnx_int8" not in result.artifacts
    assert result.metrics()["variant_onnx_int8_available"] == 0.0
    assert "no quantizer for this graph" in result.to_markdown()
    with pytest.raises(ValueError, match="no quantizer for this graph"):
        save_variant(result, "onnx_int8", tmp_path)


def test_without_torchao_the_torch_int8_variants_say_how_to_get_it(
    trained_network, optimize_with, fast_optimization, monkeypatch
):
    monkeypatch.setitem(sys.modules, "torchao", None)
    monkeypatch.setitem(sys.modules, "torchao.quantization", None)
    config = fast_optimization.model_copy(update={"variants": ["fp32", "dynamic_int8", "static_int8"]})
    result = optimize_with(trained_network, config)
    for name in ("dynamic_int8", "static_int8"):
        assert "pip install 'torchao" in result.report(name).reason
    assert result.chosen == "fp32"


def test_load_variant_names_the_known_file_types(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match=r"\.onnx"):
        load_variant(path)


def test_calibration_sample_keeps_each_columns_extremes(split_features):
    train, _, _ = split_features
    sample = optimize_module.sample_rows(train, 64)
    assert len(sample.numeric) == 64
    np.testing.assert_array_equal(sample.numeric.max(axis=0), train.numeric.max(axis=0))
    np.testing.assert_array_equal(sample.numeric.min(axis=0), train.numeric.min(axis=0))


def test_config_default_lists_every_buildable_variant():
    assert set(OptimizationConfig().variants) == set(optimize_module.VARIANT_BUILDERS)


def test_loading_a_variant_does_not_import_the_training_stack():
    probe = "import sys, domainflow.optimization; print(sorted({'lightning', 'prefect'} & set(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
