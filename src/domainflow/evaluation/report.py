"""Evidently's classification report for a candidate, as one self-contained HTML file.

`current` is the candidate's scores on its test rows. The intended `reference`
is the reference model's scores (the champion's, else the baseline's) on the
same rows: every panel then sets the two models side by side on identical
data, the comparison the gates make. Validation rows as reference would mix
a change of model with a change of data (a month later), which the report
cannot tell apart.

The HTML embeds Evidently's viewer (3.7 MB of JavaScript), so it opens
offline; 10k rows add 0.2 MB of curves, 0.3 MB with 15 features summarised.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

LABEL, SCORE = "label", "score"


def scored_frame(labels: np.ndarray, scores: np.ndarray, features: pd.DataFrame | None = None) -> pd.DataFrame:
    """Rows as the report reads them: the features (if any), `label` (0/1) and `score` (P(label = 1))."""
    frame = pd.DataFrame(index=range(len(labels))) if features is None else features.reset_index(drop=True)
    clashes = sorted({LABEL, SCORE} & set(frame.columns))
    if clashes:
        raise ValueError(f"features has columns named {clashes}, which the report uses for labels and scores")
    if len(frame) != len(labels) or len(scores) != len(labels):
        raise ValueError(f"labels ({len(labels)}), scores ({len(scores)}) and features ({len(frame)}) differ in rows")
    return frame.assign(**{LABEL: np.asarray(labels).astype(np.int64), SCORE: np.asarray(scores, dtype=np.float64)})


def _check_frame(name: str, frame: pd.DataFrame, columns: Sequence[str]) -> None:
    missing = [column for column in (LABEL, SCORE, *columns) if column not in frame.columns]
    if missing:
        raise ValueError(f"{name} lacks the columns {missing}; build it with scored_frame(labels, scores, features)")
    if not frame[LABEL].isin((0, 1)).all():
        raise ValueError(f"{name}[{LABEL!r}] must hold 0/1 labels")
    if not frame[SCORE].between(0, 1).all():
        raise ValueError(f"{name}[{SCORE!r}] must hold probabilities in [0, 1] with no NaN")


def write_classification_report(
    current: pd.DataFrame,
    reference: pd.DataFrame | None,
    path: str | Path,
    *,
    numeric_features: Sequence[str] = (),
    categorical_features: Sequence[str] = (),
    threshold: float = 0.5,
) -> Path:
    """Write Evidently's ClassificationPreset (plus a data summary of any features named) to `path`.

    Frames come from `scored_frame`. `threshold` turns scores into the labels
    behind accuracy, precision, recall and the confusion matrix. On 10k rows
    the classification panels take ~1 s; summarising 15 features adds ~3 s.
    """
    # Importing evidently takes ~6 s; only a run that writes a report pays it.
    from evidently import BinaryClassification, DataDefinition, Dataset, Report
    from evidently.presets import ClassificationPreset, DataSummaryPreset

    features = [*numeric_features, *categorical_features]
    _check_frame("current", current, features)
    if reference is not None:
        _check_frame("reference", reference, features)
    definition = DataDefinition(
        classification=[BinaryClassification(target=LABEL, prediction_probas=SCORE)],
        numerical_columns=[SCORE, *numeric_features],
        categorical_columns=[LABEL, *categorical_features],
    )
    presets = [ClassificationPreset(probas_threshold=threshold)]
    if features:
        presets.append(DataSummaryPreset(columns=features))
    columns = [*features, LABEL, SCORE]
    snapshot = Report(presets).run(
        Dataset.from_pandas(current[columns], data_definition=definition),
        None if reference is None else Dataset.from_pandas(reference[columns], data_definition=definition),
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(path))  # save_html writes nothing when given a Path
    return path
