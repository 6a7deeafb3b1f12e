"""Build every configured variant of a trained network, measure it against FP32, choose one to serve."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from domainflow.config import OptimizationConfig
from domainflow.data.features import FeatureMatrix, FeaturePipeline
from domainflow.data.split import TimeSplit
from domainflow.evaluation.metrics import binary_metrics
from domainflow.models.predictors import ONNX_FORMAT, SUFFIXES, TORCH_FORMAT, Predictor, load_predictor
from domainflow.optimization.measure import one_torch_thread, predict_in_batches, time_predictors
from domainflow.optimization.onnx_variants import build_onnx_fp32, build_onnx_int8
from domainflow.optimization.report import REFERENCE, OptimizationResult, VariantReport, select_variant
from domainflow.optimization.torch_variants import build_dynamic_int8, build_fp32, build_static_int8

if TYPE_CHECKING:  # the training stack (Lightning) stays out of serving imports
    from domainflow.models.lightning import TrainedNetwork

logger = logging.getLogger(__name__)

# Each builder returns the variant's serialized file; it is measured by loading those bytes back,
# so what is measured is exactly what is stored.
VARIANT_BUILDERS: dict[str, Callable[[TrainedNetwork, FeatureMatrix], bytes]] = {
    "fp32": build_fp32,
    "dynamic_int8": build_dynamic_int8,
    "static_int8": build_static_int8,
    "onnx_fp32": build_onnx_fp32,
    "onnx_int8": build_onnx_int8,
}
VARIANT_FORMATS = {
    "fp32": TORCH_FORMAT,
    "dynamic_int8": TORCH_FORMAT,
    "static_int8": TORCH_FORMAT,
    "onnx_fp32": ONNX_FORMAT,
    "onnx_int8": ONNX_FORMAT,
}
CALIBRATION_SEED = 0


def sample_rows(features: FeatureMatrix, rows: int, seed: int = CALIBRATION_SEED) -> FeatureMatrix:
    """`rows` calibration rows: those holding each numeric column's minimum and maximum, then random ones.

    A random sample alone misses rare extremes (a missing-value indicator is
    about +-38 once standardized), and static INT8 then clips those rows.
    """
    count = len(features.numeric)
    if count <= rows:
        return features
    extremes = np.unique(np.concatenate([features.numeric.argmin(axis=0), features.numeric.argmax(axis=0)]))[:rows]
    rest = np.setdiff1d(np.arange(count), extremes)
    drawn = np.random.default_rng(seed).choice(rest, size=rows - len(extremes), replace=False)
    chosen = np.sort(np.concatenate([extremes, drawn]))
    return FeatureMatrix(numeric=features.numeric[chosen], categorical=features.categorical[chosen])


def _build(name: str, network: TrainedNetwork, calibration: FeatureMatrix) -> tuple[bytes, Predictor]:
    payload = VARIANT_BUILDERS[name](network, calibration)
    return payload, load_predictor(payload, VARIANT_FORMATS[name])


def optimize_network(
    network: TrainedNetwork,
    calibration: FeatureMatrix,
    validation: FeatureMatrix,
    validation_labels: np.ndarray,
    config: OptimizationConfig,
) -> OptimizationResult:
    """Build `config.variants`, measure size, latency, AUC and parity with FP32, and choose one.

    `calibration` are training rows; `config.calibration_rows` of them are
    drawn for static quantization. A variant that cannot be built here is
    reported unavailable with the reason and never chosen.
    """
    sample = sample_rows(calibration, config.calibration_rows)
    artifacts: dict[str, bytes] = {}
    predictors: dict[str, Predictor] = {}
    unavailable: dict[str, str] = {}
    for name in config.variants:
        try:
            artifacts[name], predictors[name] = _build(name, network, sample)
        except Exception as error:  # any failure of one variant is its report, not the run's end
            unavailable[name] = str(error) if isinstance(error, ImportError) else f"{type(error).__name__}: {error}"
            logger.warning("optimization variant=%s unavailable reason=%s", name, unavailable[name])
    if REFERENCE in unavailable:
        raise RuntimeError(f"the FP32 reference could not be rebuilt from the weights: {unavailable[REFERENCE]}")

    with one_torch_thread():
        scores = {name: predict_in_batches(p, validation, config.serving_batch_size) for name, p in predictors.items()}
        latencies = {
            batch: time_predictors(predictors, validation, batch, config.latency_repeats)
            for batch in config.latency_batch_sizes
        }
    labels = np.asarray(validation_labels)
    reference_auc = binary_metrics(labels, scores[REFERENCE])["auc"]
    reports = []
    for name in config.variants:
        if name in unavailable:
            reports.append(VariantReport(name=name, available=False, reason=unavailable[name]))
            continue
        auc = binary_metrics(labels, scores[name])["auc"]
        gap = np.abs(scores[name] - scores[REFERENCE])
        reports.append(
            VariantReport(
                name=name,
                available=True,
                format=VARIANT_FORMATS[name],
                size_bytes=len(artifacts[name]),
                p50_ms={batch: by_name[name][0] for batch, by_name in latencies.items()},
                p95_ms={batch: by_name[name][1] for batch, by_name in latencies.items()},
                auc=auc,
                auc_drop=reference_auc - auc,
                parity_max=float(gap.max()),
                parity_mean=float(gap.mean()),
            )
        )
    chosen, reason = select_variant(reports, config)
    result = OptimizationResult(
        variants=reports,
        chosen=chosen,
        reason=reason,
        artifacts=artifacts,
        formats={name: VARIANT_FORMATS[name] for name in artifacts},
        config=config,
    )
    ratios = " ".join(f"{key}={value:.2f}" for key, value in result.ratios().items())
    logger.info(
        "optimization chosen=%s built=%s unavailable=%s %s", chosen, sorted(artifacts), sorted(unavailable), ratios
    )
    return result


def optimize_for_serving(
    pipeline: FeaturePipeline, split: TimeSplit, network: TrainedNetwork, config: OptimizationConfig
) -> OptimizationResult:
    """Variants calibrated on training rows, judged on validation rows; the test rows stay for the gates."""
    return optimize_network(network, pipeline.transform(split.train), pipeline.transform(split.validation),
                            split.labels("validation"), config)  # fmt: skip


def save_variant(result: OptimizationResult, name: str, path: Path) -> Path:
    """Write variant `name` to `<path>/<name><suffix>` (creating `path`); the suffix says the format."""
    if name not in result.artifacts:
        built = sorted(result.artifacts)
        why = next((f" ({r.reason})" for r in result.variants if r.name == name and not r.available), "")
        raise ValueError(f"variant {name!r} was not built{why}; built variants: {built}")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    target = path / f"{name}{SUFFIXES[result.formats[name]]}"
    target.write_bytes(result.artifacts[name])
    return target
