"""The gate stage: may the candidate become `challenger`? Judged on the test rows against its reference.

The reference is the domain's champion when it has one (scored by the registry's served
model on the same rows, as production serves it), else the HistGradientBoosting baseline
trained on the candidate's own training rows. The checks are `domainflow.evaluation.gates`;
the registry moves its aliases by the verdict (`domainflow.registry.aliases.apply_gate_verdict`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from domainflow.candidates.scores import TrainedCandidate
from domainflow.config import PipelineConfig
from domainflow.data.split import TimeSplit
from domainflow.evaluation.gates import GateReference, GateVerdict, evaluate_gates
from domainflow.evaluation.report import scored_frame, write_classification_report
from domainflow.models.baseline import baseline_proba
from domainflow.registry.champion import ChampionScores, score_champion


@dataclass(frozen=True)
class CandidateEvaluation:
    verdict: GateVerdict
    report_path: str | None  # the Evidently HTML, logged to MLflow with the run


def choose_reference(champion: ChampionScores | None, baseline_scores: np.ndarray) -> GateReference:
    if champion is not None:
        return GateReference(label=f"champion v{champion.version}", kind="champion", scores=champion.scores)
    return GateReference(label="baseline (HistGradientBoosting)", kind="baseline", scores=baseline_scores)


def evaluate_candidate(
    tracking_uri: str,
    model_name: str,
    config: PipelineConfig,
    split: TimeSplit,
    candidate: TrainedCandidate,
    report_path: Path | None = None,
) -> CandidateEvaluation:
    """The served variant on the test rows against `model_name`'s champion (else the baseline), and its report.

    The report's reference is the reference model on the same rows, so it shows the
    comparison the gates made rather than a change of data.
    """
    test, labels = split.test, split.labels("test")
    features = candidate.pipeline.transform(test)
    scores = candidate.served_predictor().predict(features)
    reference = choose_reference(score_champion(tracking_uri, model_name, test),
                                 baseline_proba(candidate.baseline, features))  # fmt: skip
    gate = config.gate
    slices = test[gate.slice_columns].reset_index(drop=True) if gate.slice_columns else None
    verdict = evaluate_gates(labels, scores, candidate.scores.network["validation"]["auc"], reference, slices, gate)
    written = None
    if report_path is not None:
        shown = test[config.data.features]
        written = write_classification_report(
            scored_frame(labels, scores, shown),
            scored_frame(labels, reference.scores, shown),
            report_path,
            numeric_features=config.data.numeric_features,
            categorical_features=config.data.categorical_features,
        )
    return CandidateEvaluation(verdict=verdict, report_path=str(written) if written else None)
