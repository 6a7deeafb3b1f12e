"""The reliability diagram a training run logs: observed delay rate against predicted, before and after the map."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from domainflow.evaluation.metrics import expected_calibration_error

BINS = 10


def write_reliability_diagram(labels: np.ndarray, scores: dict[str, np.ndarray], title: str, path: Path) -> Path:
    """One curve per entry of `scores` (e.g. "before"/"after"), scikit-learn's CalibrationDisplay, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")  # no display where pipelines run
    import matplotlib.pyplot as plt
    from sklearn.calibration import CalibrationDisplay

    figure, axes = plt.subplots(figsize=(5.5, 5))
    try:
        for name, values in scores.items():
            ece = expected_calibration_error(labels, values, BINS)
            CalibrationDisplay.from_predictions(labels, values, n_bins=BINS, name=f"{name} (ECE {ece:.3f})", ax=axes)
        axes.set_title(title)
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=100, bbox_inches="tight")
    finally:
        plt.close(figure)
    return path
