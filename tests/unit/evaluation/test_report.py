from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from domainflow.evaluation.report import scored_frame, write_classification_report


@pytest.fixture(scope="module")
def test_rows():
    rng = np.random.default_rng(0)
    rows = 2_000
    features = pd.DataFrame({"distance": rng.uniform(100, 3_000, rows), "carrier": rng.choice(["AA", "EV"], rows)})
    labels = (rng.random(rows) < 0.3).astype(int)
    signal = labels + rng.normal(size=rows)
    candidate = 1 / (1 + np.exp(-(signal - 1)))
    champion = 1 / (1 + np.exp(-(signal + rng.normal(size=rows) - 1)))
    return features, labels, candidate, champion


def test_the_report_shows_both_models_metrics_and_the_features(test_rows, tmp_path):
    features, labels, candidate, champion = test_rows

    path = write_classification_report(
        scored_frame(labels, candidate, features),
        scored_frame(labels, champion, features),
        tmp_path / "reports" / "classification.html",
        numeric_features=["distance"],
        categorical_features=["carrier"],
    )

    html = path.read_text(encoding="utf-8")
    for auc in (roc_auc_score(labels, candidate), roc_auc_score(labels, champion)):
        assert f'{{"value": "{auc:.3f}", "label": "ROC AUC"}}' in html
    assert "Log Loss" in html or "LogLoss" in html
    assert '"distance"' in html and '"carrier"' in html


def test_the_report_runs_without_a_reference(test_rows, tmp_path):
    _, labels, candidate, _ = test_rows

    path = write_classification_report(scored_frame(labels, candidate), None, tmp_path / "alone.html")

    assert f'"{roc_auc_score(labels, candidate):.3f}"' in path.read_text(encoding="utf-8")


def test_frames_without_labels_or_scores_are_refused(test_rows, tmp_path):
    features, labels, candidate, _ = test_rows
    with pytest.raises(ValueError, match=r"current lacks the columns \['score'\]"):
        write_classification_report(features.assign(label=labels), None, tmp_path / "x.html")
    with pytest.raises(ValueError, match="features has columns named \\['label'\\]"):
        scored_frame(labels, candidate, features.assign(label=labels))
