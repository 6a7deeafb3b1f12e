"""A candidate on the test split: the gates against its reference, and an Evidently report of both.

The reference is the domain's champion when it has one (scored by the
registry's served model on the same rows), else the HistGradientBoosting
baseline trained on the candidate's own training rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from domainflow.config import PipelineConfig
from domainflow.evaluation.gates import GateReference, GateVerdict, evaluate_gates
from domainflow.evaluation.report import scored_frame, write_classification_report


@dataclass(frozen=True)
class CandidateEvaluation:
    verdict: GateVerdict
    report_path: str | None  # the Evidently HTML, logged to MLflow with the run


def choose_reference(
    champion_version: str | None, champion_scores: np.ndarray | None, baseline_scores: np.ndarray
) -> GateReference:
    if champion_version is not None and champion_scores is not None:
        return GateReference(label=f"champion v{champion_version}", kind="champion", scores=champion_scores)
    return GateReference(label="baseline (HistGradientBoosting)", kind="baseline", scores=baseline_scores)


def evaluate_candidate(
    test: pd.DataFrame,
    labels: np.ndarray,
    candidate_scores: np.ndarray,
    validation_auc: float,
    reference: GateReference,
    config: PipelineConfig,
    report_path: Path | None = None,
) -> CandidateEvaluation:
    """Gate the candidate and, when `report_path` is given, write the report next to the verdict.

    The report's reference is the same model on the same rows, so it shows the
    comparison the gates made rather than a change of data.
    """
    slices = test[config.gate.slice_columns].reset_index(drop=True) if config.gate.slice_columns else None
    verdict = evaluate_gates(labels, candidate_scores, validation_auc, reference, slices, config.gate)
    written = None
    if report_path is not None:
        features = test[config.data.features]
        written = write_classification_report(
            scored_frame(labels, candidate_scores, features),
            scored_frame(labels, reference.scores, features),
            report_path,
            numeric_features=config.data.numeric_features,
            categorical_features=config.data.categorical_features,
        )
    return CandidateEvaluation(verdict=verdict, report_path=str(written) if written else None)
