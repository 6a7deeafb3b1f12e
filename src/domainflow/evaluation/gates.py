"""Statistical quality gates: may a candidate become `challenger`?

Every check runs on the test split. The checks against a reference (the
domain's champion, else the HistGradientBoosting baseline) score both models
on the same rows, so each comparison is paired. A check that cannot run (no
reference, no slices, no threshold set) is reported as skipped, never passed.
"""

from __future__ import annotations

import operator
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

from domainflow.config import GateConfig
from domainflow.evaluation.bootstrap import bootstrap_auc, paired_auc_difference, paired_ece_difference
from domainflow.evaluation.comparison import delong_test, mcnemar_test
from domainflow.evaluation.experiments import holm_correction
from domainflow.evaluation.metrics import binary_metrics, expected_calibration_error, slice_auc_drops

_COMPARE = {">=": operator.ge, "<=": operator.le, ">": operator.gt}
DECISION_THRESHOLD = 0.5  # where McNemar's test turns scores into predictions


@dataclass(frozen=True, eq=False)
class GateReference:
    """Another model's scores on the candidate's test rows, in the same order."""

    label: str  # how reports name it: "champion v3", "baseline"
    kind: Literal["champion", "baseline"]  # picks champion_margin or baseline_margin
    scores: np.ndarray

    def __post_init__(self) -> None:
        if self.kind not in ("champion", "baseline"):
            raise ValueError(f"GateReference.kind must be 'champion' or 'baseline', got {self.kind!r}")
        object.__setattr__(self, "scores", np.asarray(self.scores, dtype=np.float64))

    def margin(self, config: GateConfig) -> float:
        return config.champion_margin if self.kind == "champion" else config.baseline_margin


Comparison = Literal[">=", "<=", ">"]


@dataclass(frozen=True)
class GateCheck:
    """One check's figure against its threshold; plain data, so Prefect can pickle and cache it."""

    name: str
    figure: float | None  # what was measured; None when it could not be
    threshold: float | None
    comparison: Comparison  # `figure <comparison> threshold` must hold
    passed: bool | None  # None: skipped, with the reason in `detail`
    detail: str
    figure_name: str  # the figure's MLflow metric, without the `gate_` prefix
    extras: dict[str, float] = field(default_factory=dict)  # further figures for MLflow, e.g. DeLong's p-value
    # Per-part figures behind the check (the slice check's slices), listed under the verdict's table.
    parts: tuple[dict[str, str | float | int | bool], ...] = ()

    @property
    def skipped(self) -> bool:
        return self.passed is None


@dataclass(frozen=True)
class GateVerdict:
    """Passed when no check failed; skipped checks neither pass nor fail it."""

    checks: tuple[GateCheck, ...]
    reference: str | None  # the reference's label, None when there was none
    window: str | None = None  # the rows judged: "test 2013-08-01 to 2013-09-01, 9,312 rows"

    @property
    def passed(self) -> bool:
        return all(check.passed is not False for check in self.checks)

    @property
    def failed_checks(self) -> list[str]:
        return [check.name for check in self.checks if check.passed is False]

    @property
    def reason(self) -> str:
        """One line: what passed, or each failed check with its figure and threshold."""
        if self.passed:
            skipped = [check.name for check in self.checks if check.skipped]
            against = f" against {self.reference}" if self.reference else ""
            ran = len(self.checks) - len(skipped)
            return f"passed {ran} checks{against}" + (f"; skipped {', '.join(skipped)}" if skipped else "")
        failures = [
            f"{c.name} ({c.detail})" if c.figure is None
            else f"{c.name} ({c.figure_name} {c.figure:.4f}, needs {c.comparison} {c.threshold:.4f})"
            for c in self.checks
            if c.passed is False
        ]  # fmt: skip
        return "failed " + "; ".join(failures)

    def to_markdown(self) -> str:
        lines = [
            f"**Gate {'passed' if self.passed else 'failed'}**: {self.reason}",
            *(
                [f"Judged on {self.window}" + (f", against {self.reference}." if self.reference else ".")]
                if self.window
                else []
            ),
            "",
            "| check | figure | threshold | result | detail |",
            "|---|---|---|---|---|",
        ]
        for check in self.checks:
            figure = "" if check.figure is None else f"{check.figure:.4f}"
            threshold = "" if check.threshold is None else f"{check.comparison} {check.threshold:.4f}"
            result = {True: "pass", False: "**fail**", None: "skipped"}[check.passed]
            detail = check.detail.replace("|", "\\|")
            lines.append(f"| {check.name} | {figure} | {threshold} | {result} | {detail} |")
        for check in self.checks:
            if check.parts:
                lines += ["", f"{check.name}, each part:", "", "| " + " | ".join(check.parts[0]) + " |",
                          "|" + "---|" * len(check.parts[0])]  # fmt: skip
                lines += ["| " + " | ".join(_cell(value) for value in part.values()) + " |" for part in check.parts]
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict:
        """JSON-able, for MLflow's `log_dict`."""
        return {
            "passed": self.passed,
            "reason": self.reason,
            "reference": self.reference,
            "window": self.window,
            "failed_checks": self.failed_checks,
            "checks": [asdict(check) for check in self.checks],
        }

    def metrics(self) -> dict[str, float]:
        """Flat floats for MLflow: `gate_passed`, each figure, and 1/0 per check that ran."""
        flat = {"gate_passed": float(self.passed)}
        for check in self.checks:
            if check.figure is not None:
                flat[f"gate_{check.figure_name}"] = check.figure
            flat.update({f"gate_{key}": value for key, value in check.extras.items()})
            if not check.skipped:
                flat[f"gate_{check.name}_passed"] = float(check.passed)
        return flat


def _cell(value: str | float | int | bool) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|")


def _measured(
    name: str,
    figure_name: str,
    figure: float,
    comparison: Comparison,
    threshold: float,
    detail: str,
    *,
    extras: dict[str, float] | None = None,
    parts: tuple[dict[str, str | float | int | bool], ...] = (),
) -> GateCheck:
    passed = bool(_COMPARE[comparison](figure, threshold))
    extras = {key: float(value) for key, value in (extras or {}).items()}
    return GateCheck(name, float(figure), float(threshold), comparison, passed, detail, figure_name, extras, parts)


def _skipped(name: str, figure_name: str, comparison: Comparison, threshold: float | None, why: str) -> GateCheck:
    return GateCheck(name, None, threshold, comparison, None, f"skipped: {why}", figure_name)


def _check_inputs(
    labels: np.ndarray,
    scores: np.ndarray,
    validation_auc: float,
    reference: GateReference | None,
    slices: pd.DataFrame | None,
    config: GateConfig,
) -> tuple[np.ndarray, np.ndarray]:
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=np.float64)
    if labels.ndim != 1 or not np.isin(labels, (0, 1)).all() or np.unique(labels).size != 2:
        raise ValueError("labels must be a 1-D array of 0/1 holding both classes: the gates need a test AUC")
    named = {"candidate_scores": scores}
    if reference is not None:
        named[f"the scores of the reference {reference.label!r}"] = reference.scores
    for name, values in named.items():
        if values.shape != labels.shape:
            raise ValueError(f"{name} have shape {values.shape} but labels {labels.shape}: score the same test rows")
        if not np.all((values >= 0) & (values <= 1)):
            raise ValueError(f"{name} must be probabilities in [0, 1] with no NaN")
    if not 0 <= validation_auc <= 1:
        raise ValueError(f"validation_auc must lie in [0, 1], got {validation_auc}")
    if slices is not None:
        missing = [column for column in config.slice_columns if column not in slices.columns]
        if missing:
            raise ValueError(f"slices lacks the gate.slice_columns {missing}: pass those columns of the test rows")
        if len(slices) != labels.size:
            raise ValueError(f"slices have {len(slices)} rows but labels {labels.size}: pass the same test rows")
    return labels.astype(np.int64), scores


def _non_inferiority(
    labels: np.ndarray, scores: np.ndarray, reference: GateReference | None, config: GateConfig
) -> GateCheck:
    """Paired bootstrap of AUC(candidate) - AUC(reference): its lower bound must stay above -margin.

    The bound is the lower end of the two-sided interval at `confidence`, the usual
    convention for non-inferiority trials (a one-sided test at (1 + confidence) / 2).
    """
    name, figure_name = "non_inferiority", "non_inferiority_lower"
    if reference is None:
        return _skipped(name, figure_name, ">", None, "no champion or baseline scores to compare with")
    margin = reference.margin(config)
    interval = paired_auc_difference(
        labels, reference.scores, scores, config.bootstrap_resamples, config.confidence, config.seed
    )
    delong = delong_test(labels, reference.scores, scores)
    mcnemar = mcnemar_test(labels, reference.scores >= DECISION_THRESHOLD, scores >= DECISION_THRESHOLD)
    detail = (
        f"AUC candidate - {reference.label} = {interval.estimate:+.4f}, {interval.confidence:.0%} CI "
        f"[{interval.low:+.4f}, {interval.high:+.4f}], {reference.kind} margin {margin}; "
        f"DeLong p = {delong.p_value:.3g}; McNemar p = {mcnemar.p_value:.3g} "
        f"(accuracy at {DECISION_THRESHOLD}: {mcnemar.difference:+.4f} vs the reference)"
    )
    extras = {
        "auc_difference": interval.estimate,
        "non_inferiority_upper": interval.high,
        "delong_p_value": delong.p_value,
        "mcnemar_p_value": mcnemar.p_value,
    }
    return _measured(name, figure_name, interval.low, ">", -margin, detail, extras=extras)


def _slice_regression(
    labels: np.ndarray,
    scores: np.ndarray,
    reference: GateReference | None,
    slices: pd.DataFrame | None,
    config: GateConfig,
) -> GateCheck:
    """A slice fails when its AUC drop is beyond `max_slice_regression` with confidence, across all slices at once.

    Each judged slice tests, one-sided, whether the reference's AUC minus the candidate's exceeds
    the threshold (DeLong's standard error, paired on the slice's rows); Holm's step-down keeps the
    chance that any slice of two equally good models fails at 1 - confidence, however many slices
    there are. The figure is the largest simultaneous lower bound of a drop (Bonferroni's, which is
    Holm's first step): the check fails exactly when Holm rejects a slice. Judging the largest point
    estimate instead failed two equally good models 28 % of the time over seven carriers.
    """
    name, figure_name, threshold = "slice_regression", "worst_slice_auc_drop_bound", config.max_slice_regression
    if reference is None:
        return _skipped(name, figure_name, "<=", threshold, "no champion or baseline scores to compare with")
    if slices is None or not config.slice_columns:
        return _skipped(name, figure_name, "<=", threshold, "no slice columns given")
    tables = []
    for column in config.slice_columns:
        table = slice_auc_drops(slices[column], labels, scores, reference.scores, config.min_slice_rows)
        tables.append(table.assign(slice=column + "=" + table["slice"].astype(str)))
    table = pd.concat(tables, ignore_index=True)
    drops, total = table.dropna(subset="drop").reset_index(drop=True), len(table)
    if drops.empty:
        why = f"none of {total} slices has {config.min_slice_rows} rows with both classes"
        return _skipped(name, figure_name, "<=", threshold, why)
    alpha, judged = 1 - config.confidence, len(drops)
    error = drops["drop_se"].to_numpy()
    beyond = drops["drop"].to_numpy() - threshold
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(error > 0, beyond / error, np.where(beyond > 0, np.inf, -np.inf))
    holm = holm_correction(stats.norm.sf(z), alpha)
    drops["holm_p_value"], drops["fails"] = holm.adjusted, holm.reject
    drops["drop_lower_bound"] = drops["drop"] - stats.norm.isf(alpha / judged) * error
    drops = drops.sort_values("drop_lower_bound", ascending=False)
    worst, failing = drops.iloc[0], int(drops["fails"].sum())
    unjudged = f"; {total - judged} under {config.min_slice_rows} rows or of one class" if judged < total else ""
    detail = (
        f"worst {worst['slice']}: AUC {worst['auc']:.4f} vs {worst['reference_auc']:.4f} for {reference.label} "
        f"({worst['rows']} rows), drop {worst['drop']:+.4f}, lower bound {worst['drop_lower_bound']:+.4f} "
        f"({config.confidence:.0%}, simultaneous over {judged} slices); "
        f"{failing} of {judged} slices judged fail (Holm){unjudged}"
    )
    extras = {"worst_slice_auc_drop": float(drops["drop"].max()), "slices_judged": float(judged),
              "slices_failed": float(failing)}  # fmt: skip
    listed = ["slice", "rows", "auc", "reference_auc", "drop", "drop_lower_bound", "holm_p_value", "fails"]
    parts = tuple(drops[listed].to_dict("records"))  # plain Python values
    return _measured(name, figure_name, worst["drop_lower_bound"], "<=", threshold, detail, extras=extras, parts=parts)


def _calibration(
    labels: np.ndarray, scores: np.ndarray, reference: GateReference | None, config: GateConfig
) -> GateCheck:
    """Paired bootstrap of ECE(candidate) - ECE(reference) on the same rows: its upper bound must be within the margin.

    ECE is at least |mean score - base rate|, so on a test month whose delay rate moved every model
    is off by about as much; an absolute ceiling failed a retrain whatever the champion scored on the
    same rows. Judged against the reference, that shared part cancels.
    """
    name, figure_name, margin = "calibration", "ece_difference_upper", config.calibration_margin
    if reference is None:
        return _skipped(name, figure_name, "<=", margin, "no champion or baseline scores to compare with")
    interval = paired_ece_difference(
        labels, reference.scores, scores, config.bootstrap_resamples, config.confidence, config.seed
    )
    own, theirs = expected_calibration_error(labels, scores), expected_calibration_error(labels, reference.scores)
    detail = (
        f"ECE candidate - {reference.label} = {interval.estimate:+.4f} ({own:.4f} vs {theirs:.4f}), "
        f"{interval.confidence:.0%} CI [{interval.low:+.4f}, {interval.high:+.4f}]; 10 equal-width score bins"
    )
    extras = {"test_ece": own, "reference_test_ece": theirs, "ece_difference": interval.estimate}
    return _measured(name, figure_name, interval.high, "<=", margin, detail, extras=extras)


def calibration_fit_check(problem: str | None, detail: str) -> GateCheck:
    """Whether the candidate's calibration map could be fitted: a window too small, or of one class, fails it.

    The check is never skipped: a candidate whose probabilities could not be calibrated does not serve.
    """
    if problem is not None:
        return GateCheck("calibration_fit", None, None, ">=", False, problem, "calibration_rows")
    return GateCheck("calibration_fit", None, None, ">=", True, detail, "calibration_rows")


def _floor(config: GateConfig, floor: float, reference_auc: float | None) -> tuple[float, str]:
    """The AUC floor, lowered to the champion's AUC on the same rows less its margin when that is lower.

    A month whose labels every model ranks poorly (a concept shift) is no reason to keep a champion
    that ranks them worse than the retrain does; non-inferiority still holds the retrain to it.
    """
    if reference_auc is None or reference_auc - config.champion_margin >= floor:
        return floor, ""
    lowered = reference_auc - config.champion_margin
    return lowered, (f"; the floor {floor} is lowered to the champion's AUC on these rows, {reference_auc:.4f}, "
                     f"less the margin {config.champion_margin}")  # fmt: skip


def _min_test_auc(
    labels: np.ndarray, scores: np.ndarray, auc: float, reference: GateReference | None, config: GateConfig
) -> GateCheck:
    interval = bootstrap_auc(labels, scores, config.bootstrap_resamples, config.confidence, config.seed)
    champion_auc = (
        binary_metrics(labels, reference.scores)["auc"] if reference and reference.kind == "champion" else None
    )
    floor, lowered = _floor(config, config.min_test_auc, champion_auc)
    detail = f"on {labels.size} test rows, {interval.confidence:.0%} CI [{interval.low:.4f}, {interval.high:.4f}]"
    extras = {"test_auc_low": interval.low, "test_auc_high": interval.high}
    return _measured("min_test_auc", "test_auc", auc, ">=", floor, detail + lowered, extras=extras)


def _max_test_log_loss(log_loss: float, rows: int, config: GateConfig) -> GateCheck:
    if config.max_test_log_loss is None:
        return _skipped("max_test_log_loss", "test_log_loss", "<=", None, "gate.max_test_log_loss is not set")
    return _measured("max_test_log_loss", "test_log_loss", log_loss, "<=", config.max_test_log_loss, f"on {rows} rows")


def evaluate_gates(
    labels: np.ndarray,
    candidate_scores: np.ndarray,
    validation_auc: float,
    reference: GateReference | None,
    slices: pd.DataFrame | None,
    config: GateConfig,
    *,
    window: str | None = None,
    before: tuple[GateCheck, ...] = (),
    champion_validation_auc: float | None = None,
) -> GateVerdict:
    """Run every gate on the test rows.

    `reference` holds the champion's (else the baseline's) scores on the same
    rows; `slices` the test rows' `config.slice_columns`, row for row; `window`
    names those rows; `before` are checks made elsewhere (the calibration fit), listed first;
    `champion_validation_auc` is the champion's on the candidate's validation rows, if scored.
    """
    labels, scores = _check_inputs(labels, candidate_scores, validation_auc, reference, slices, config)
    test = binary_metrics(labels, scores)
    validation_floor, lowered = _floor(config, config.min_validation_auc, champion_validation_auc)
    validation_detail = "on the validation split, which early stopping and tuning saw" + lowered
    checks = (
        *before,
        _measured("min_validation_auc", "validation_auc", validation_auc, ">=", validation_floor, validation_detail),
        _min_test_auc(labels, scores, test["auc"], reference, config),
        _max_test_log_loss(test["log_loss"], labels.size, config),
        _non_inferiority(labels, scores, reference, config),
        _calibration(labels, scores, reference, config),
        _slice_regression(labels, scores, reference, slices, config),
    )
    return GateVerdict(checks, reference.label if reference is not None else None, window)
