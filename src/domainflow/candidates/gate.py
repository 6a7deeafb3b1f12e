"""The gate stage: which family, if any, may become `challenger`? Each judged on the test rows against one reference.

The reference is the domain's champion when it has one (scored by the registry's served
model on the same rows, as production serves it), else the gradient-boosting family of this
run. Every family the config lists is gated against it alike (the gradient-boosting one, when
it is the reference itself, by the checks that need no reference); of those that pass, the
one with the highest test AUC is chosen, and when none passes the best-scoring one is
recorded as rejected. The checks are `domainflow.evaluation.gates`; the registry moves its
aliases by the chosen family's verdict (`domainflow.registry.aliases.apply_gate_verdict`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from domainflow.candidates.scores import GRADIENT_BOOSTING, CalibratedFamily, TrainedCandidate
from domainflow.config import PipelineConfig
from domainflow.data.split import TimeSplit
from domainflow.evaluation.gates import GateCheck, GateReference, GateVerdict, calibration_fit_check, evaluate_gates
from domainflow.evaluation.metrics import binary_metrics
from domainflow.evaluation.report import scored_frame, write_classification_report
from domainflow.registry.champion import ChampionScores, score_champion

BASELINE_LABEL = "baseline (HistGradientBoosting)"


@dataclass(frozen=True)
class CandidateEvaluation:
    verdict: GateVerdict  # the chosen family's
    family: str  # the chosen family: the one registered
    verdicts: dict[str, GateVerdict]  # every family gated, side by side
    test_auc: dict[str, float]  # each gated family's (calibrated) test AUC, what the choice ranks by
    selection: str  # why `family` was chosen
    report_path: str | None  # the Evidently HTML of the chosen family, logged to MLflow with the run

    def to_markdown(self) -> str:
        """Every family's verdict side by side, then the chosen family's checks."""
        lines = [f"**Chosen: {self.family}**: {self.selection}", "", "| family | test AUC | gate | reason |",
                 "|---|---|---|---|"]  # fmt: skip
        for family, verdict in self.verdicts.items():
            reason = verdict.reason.replace("|", "\\|")
            lines.append(f"| {family} | {self.test_auc[family]:.4f} | {'passed' if verdict.passed else 'failed'} "
                         f"| {reason} |")  # fmt: skip
        return "\n".join(lines) + "\n\n" + self.verdict.to_markdown()

    def to_dict(self) -> dict:
        return {"family": self.family, "selection": self.selection, "test_auc": self.test_auc,
                "families": {family: verdict.to_dict() for family, verdict in self.verdicts.items()}}  # fmt: skip


def check_test_window(split: TimeSplit, champion: ChampionScores | None) -> tuple[GateCheck, ...]:
    """A test window starting before the champion's validation window ended holds rows the champion trained on.

    The champion's windows are those its training run recorded; scoring it on rows it saw (or early-
    stopped and calibrated on) biases the comparison toward it, so such a window is refused.
    """
    if champion is None or champion.split is None or split.bounds is None:
        return ()
    seen, starts = champion.split.validation_until, split.bounds.validation_until
    detail = (f"{split.window('test')}; {champion.label} trained before "
              f"{champion.split.train_until:%Y-%m-%d} and validated to {seen:%Y-%m-%d}")  # fmt: skip
    if starts < seen:
        detail = f"refused: the test window starts {starts:%Y-%m-%d}, inside what the champion saw: {detail}"
        return (GateCheck("test_window", None, None, ">=", False, detail, "test_window"),)
    return (GateCheck("test_window", None, None, ">=", True, f"no overlap: {detail}", "test_window"),)


def calibration_check(family: CalibratedFamily) -> GateCheck:
    calibration = family.calibration
    if not calibration.fitted:
        return calibration_fit_check(f"{family.family} not calibrated: {calibration.problem}", "")
    before, after = calibration.before["ece"], calibration.after["ece"]
    detail = (f"{calibration.method} on {calibration.window.describe()}; ECE there "
              f"{before:.4f} -> {after:.4f}")  # fmt: skip
    return calibration_fit_check(None, detail)


def choose_family(verdicts: dict[str, GateVerdict], test_auc: dict[str, float]) -> tuple[str, str]:
    """The passing family with the highest test AUC (else the highest-scoring one, rejected), and why."""
    passed = [family for family, verdict in verdicts.items() if verdict.passed]
    pool = passed or list(verdicts)
    chosen = max(pool, key=lambda family: test_auc[family])
    others = ", ".join(f"{family} {test_auc[family]:.4f} ({'passed' if verdicts[family].passed else 'failed'})"
                       for family in verdicts if family != chosen)  # fmt: skip
    against = f" against {others}" if others else ""
    if passed:
        return chosen, f"highest test AUC of the families that passed: {test_auc[chosen]:.4f}{against}"
    return chosen, f"no family passed; the highest test AUC, {test_auc[chosen]:.4f}{against}, is recorded rejected"


def gate_families(
    config: PipelineConfig, split: TimeSplit, candidate: TrainedCandidate, champion: ChampionScores | None
) -> tuple[CandidateEvaluation, dict[str, np.ndarray], GateReference]:
    """Each configured family on the test rows against `champion` (scored on them), else this run's gradient boosting.

    Returns the evaluation (without a report), every family's test scores and the reference: what
    `evaluate_candidate` reports from. Needs no registry: a replay passes its champion's scores.
    """
    test, labels = split.test, split.labels("test")
    features = candidate.pipeline.transform(test)
    scores = {family.family: family.predictor().predict(features) for family in candidate.families}
    if champion is not None:
        reference = GateReference(label=champion.label, kind="champion", scores=champion.scores)
    else:
        reference = GateReference(label=BASELINE_LABEL, kind="baseline", scores=scores[GRADIENT_BOOSTING])
    gate = config.gate
    slices = test[gate.slice_columns].reset_index(drop=True) if gate.slice_columns else None
    window, verdicts = check_test_window(split, champion), {}
    champion_validation_auc = None
    if champion is not None and champion.validation_scores is not None:
        champion_validation_auc = binary_metrics(split.labels("validation"), champion.validation_scores)["auc"]
    for name in config.candidates.families:
        # The reference's own family needs no comparison with itself: its checks against a reference are skipped.
        against = None if champion is None and name == GRADIENT_BOOSTING else reference
        verdicts[name] = evaluate_gates(labels, scores[name], candidate.scores.by_family[name]["validation"]["auc"],
                                        against, slices, gate, window=split.window("test"),
                                        before=(*window, calibration_check(candidate.family(name))),
                                        champion_validation_auc=champion_validation_auc)  # fmt: skip
    test_auc = {name: candidate.scores.by_family[name]["test"]["auc"] for name in verdicts}
    chosen, selection = choose_family(verdicts, test_auc)
    verdict = verdicts[chosen]
    if verdict.reference is None:  # the first model's gradient boosting: the reference itself (its skips say so)
        verdict = verdicts[chosen] = GateVerdict(verdict.checks, BASELINE_LABEL, verdict.window)
    evaluation = CandidateEvaluation(verdict=verdict, family=chosen, verdicts=verdicts, test_auc=test_auc,
                                     selection=selection, report_path=None)  # fmt: skip
    return evaluation, scores, reference


def evaluate_candidate(
    tracking_uri: str,
    model_name: str,
    config: PipelineConfig,
    split: TimeSplit,
    candidate: TrainedCandidate,
    report_path: Path | None = None,
    *,
    own_training: str = "",
) -> CandidateEvaluation:
    """`gate_families` against `model_name`'s champion (scored as serving would), and the chosen family's report.

    The report sets the chosen family beside the reference on the same rows, so it shows the
    comparison the gates made rather than a change of data. `own_training`: see score_champion.
    """
    # One load of the champion for the validation and the test rows: the floors may follow its AUC on both.
    rows = pd.concat([split.validation, split.test], ignore_index=True)
    champion = score_champion(tracking_uri, model_name, rows, own_training=own_training)
    if champion is not None:
        cut = len(split.validation)
        champion = replace(champion, scores=champion.scores[cut:], validation_scores=champion.scores[:cut])
    evaluation, scores, reference = gate_families(config, split, candidate, champion)
    if report_path is None:
        return evaluation
    labels, shown = split.labels("test"), split.test[config.data.features]
    written = write_classification_report(
        scored_frame(labels, scores[evaluation.family], shown),
        scored_frame(labels, reference.scores, shown),
        report_path,
        numeric_features=config.data.numeric_features,
        categorical_features=config.data.categorical_features,
    )
    return replace(evaluation, report_path=str(written) if written else None)
