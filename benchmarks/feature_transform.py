"""The feature pipeline's transform: sklearn's fitted transformers against the compiled numpy path, side by side.

    python benchmarks/feature_transform.py

Fits the default pipeline on EWR's training months, then times transform() on 1 and 256
served rows (interleaved, median of many calls) both ways, and checks they agree.
"""

from __future__ import annotations

import time

import numpy as np

from domainflow.config import PipelineConfig
from domainflow.data.domains import filter_domain
from domainflow.data.features import FeaturePipeline
from domainflow.data.sources import load_source
from domainflow.data.split import split_by_time
from domainflow.data.validation import LABEL_COLUMN, validate_rows


def median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return float(np.median(times) * 1_000)


def main() -> None:
    config = PipelineConfig()
    frame = filter_domain(load_source(config.data.source, config.source_columns()), "origin", "EWR")
    split = split_by_time(validate_rows(frame, config.data, config.validation).valid, config.data.timestamp,
                          LABEL_COLUMN, config.split)  # fmt: skip
    pipeline = FeaturePipeline.from_schema(config.data).fit(split.train)
    print(f"fitted on {len(split.train):,} EWR rows; served rows from the held-out months\n")
    print(f"{'rows':>5}  {'sklearn ms':>10}  {'compiled ms':>11}  {'speed-up':>8}  agree")
    for rows in (1, 256):
        served = split.holdout[config.data.features].head(rows)
        sklearn_ms = compiled_ms = 0.0
        for _ in range(5):  # interleaved rounds, so both see the same machine load
            sklearn_ms += median_ms(lambda s=served: pipeline.transform_with_sklearn(s), 100) / 5
            compiled_ms += median_ms(lambda s=served: pipeline.transform(s), 100) / 5
        fast, reference = pipeline.transform(served), pipeline.transform_with_sklearn(served)
        agree = (
            np.allclose(fast.numeric, reference.numeric, atol=1e-6)
            and (fast.categorical == reference.categorical).all()
        )
        print(f"{rows:>5}  {sklearn_ms:>10.3f}  {compiled_ms:>11.3f}  {sklearn_ms / compiled_ms:>7.1f}x  {agree}")


if __name__ == "__main__":
    main()
