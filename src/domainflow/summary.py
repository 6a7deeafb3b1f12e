"""One line per domain: what the run kept, how the candidates scored, what the registry did.

The exact counts are for the operator's terminal; the report published as a
Prefect artifact carries the differentially private counts instead, as MLflow does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel
from sqlalchemy import Engine

from domainflow.canary.report import PromotionSummary
from domainflow.candidates.gate import CandidateEvaluation
from domainflow.candidates.scores import NETWORK, TrainedCandidate
from domainflow.config import PipelineConfig, SplitConfig
from domainflow.data.prepared import DomainData
from domainflow.monitoring.summary import MonitoringOutcome
from domainflow.registry.aliases import GateDecision
from domainflow.registry.mlflow_registry import LoggedRun
from domainflow.retraining.plan import RetrainingWindow
from domainflow.store.lifecycles import read_lifecycle, record_lifecycle
from domainflow.tracking import lifecycle_key


class DomainOutcome(BaseModel):
    """`registered`: the version passed the gates and holds `challenger`; `rejected`: it is in the
    registry without an alias, tagged with the checks it failed; `failed`: the run stopped with an error.

    `no_champion`: the lifecycle found no champion for the domain after training (its first version
    was rejected), so nothing serves it: it sits out serving, replay and monitoring, and the run fails.
    """

    domain: str
    status: Literal["registered", "rejected", "failed"]
    rows_in: int | None = None
    rows_kept: int | None = None
    rows_quarantined: int | None = None
    quarantine_path: str | None = None
    train_rows: int | None = None
    # The family the gates chose ("network" or "gradient_boosting"), and each family's calibrated AUCs.
    family: str | None = None
    network_val_auc: float | None = None
    boosting_val_auc: float | None = None
    network_test_auc: float | None = None
    boosting_test_auc: float | None = None
    tuning_trials: int | None = None
    tuning_pruned: int | None = None
    tuning_best_val_auc: float | None = None
    served_variant: str | None = None  # the chosen family's: fp32, int8, onnx (network) or sklearn
    size_ratio: float | None = None  # FP32 size over the served variant's
    speedup: float | None = None  # FP32 p50 latency over the served variant's, at the serving batch size
    served_auc_drop: float | None = None
    model_name: str | None = None
    version: str | None = None
    aliases: list[str] = []
    gate: str | None = None
    gate_reference: str | None = None
    failed_checks: list[str] = []
    run_id: str | None = None
    reused_run: bool = False
    published: dict[str, float] = {}
    error: str | None = None
    no_champion: bool = False
    # Set when a run with the same inputs had already taken the domain through its lifecycle: this is
    # that run's outcome, reported as stored ("unchanged since prefect-flow-run/... at ..."), not acted on again.
    unchanged_since: str | None = None
    # The canary promotion of the domain's challenger, when the run served and promoted.
    promotion: PromotionSummary | None = None
    # `domainflow run`'s loop: what monitoring found on the replayed months, and the retrain it started.
    monitoring: MonitoringOutcome | None = None
    retraining: RetrainingOutcome | None = None  # noqa: F821 - defined below, resolved by model_rebuild

    def timeline(self) -> list[str]:
        """The domain's lifecycle in order: trained, promoted, drift detected, retrained, promoted or rolled back."""
        if self.status == "failed":
            return [f"failed: {self.error}"]
        steps = [f"trained v{self.version} ({self.status})"]
        if self.unchanged_since:
            steps.insert(0, self.unchanged_since)
        if self.no_champion:
            steps.append("no champion: not served")
        if "champion" in self.aliases:
            steps.append(f"v{self.version} champion")
        if self.promotion is not None and self.promotion.version:
            steps.append(f"canary v{self.promotion.version} {self.promotion.status.replace('_', ' ')}")
        if self.monitoring is not None:
            steps.append(self.monitoring.headline())
        if self.retraining is not None:
            steps += self.retraining.steps()
        return steps

    @classmethod
    def failed(cls, domain: str, error: str) -> DomainOutcome:
        return cls(domain=domain, status="failed", error=error)

    # The lifecycle's steps after training, each given what its sub-flow returned or the error it ended with:
    # a failing step marks the domain failed and names the step, and the later steps leave it alone.

    @classmethod
    def from_training(cls, domain: str, result: DomainOutcome | BaseException) -> DomainOutcome:
        return cls.failed(domain, f"training: {_describe(result)}") if isinstance(result, BaseException) else result

    @property
    def in_service(self) -> bool:
        """Trained (registered or rejected), with a champion to serve, and not failed since: the steps go on."""
        return self.status != "failed" and not self.no_champion

    @property
    def acting(self) -> bool:
        """In service, and not reported as stored by an earlier run with the same inputs: the steps act on it."""
        return self.in_service and not self.unchanged_since

    @property
    def retraining_event(self) -> str | None:
        return self.monitoring.retraining_event if self.monitoring is not None else None

    @property
    def retraining_event_id(self) -> str | None:
        return self.monitoring.retraining_event_id if self.monitoring is not None else None

    def after_finding_champion(self, result: str | None | BaseException) -> DomainOutcome:
        """`result`: the version the domain's `champion` alias names, None when it has none."""
        if isinstance(result, BaseException):
            return self.model_copy(update={"status": "failed", "error": f"finding the champion: {_describe(result)}"})
        return self.model_copy(update={"no_champion": result is None})

    def after_promotion(self, result: PromotionSummary | BaseException) -> DomainOutcome:
        if isinstance(result, BaseException):
            return self.model_copy(update={"status": "failed", "error": f"promotion: {_describe(result)}"})
        return self.model_copy(update={"promotion": result})

    def after_replay(self, result: object | None | BaseException) -> DomainOutcome:
        """`result`: the replay's report (None when there were no rows to send)."""
        if isinstance(result, BaseException):
            return self.model_copy(update={"status": "failed", "error": f"replay: {_describe(result)}"})
        return self

    def after_monitoring(self, result: MonitoringOutcome | BaseException) -> DomainOutcome:
        if isinstance(result, BaseException):
            return self.model_copy(update={"status": "failed", "error": f"monitoring: {_describe(result)}"})
        return self.model_copy(update={"monitoring": result})

    def after_retraining(self, result: RetrainingOutcome | BaseException) -> DomainOutcome:
        if isinstance(result, BaseException):
            return self.model_copy(update={"status": "failed", "error": f"retraining: {_describe(result)}"})
        return self.model_copy(update={"retraining": result})

    def to_markdown(self) -> str:
        """A report for the Prefect UI: exact counts left out, private ones (dp_*) in."""
        exact = {"rows_in", "rows_kept", "rows_quarantined", "train_rows", "published", "promotion", "monitoring",
                 "retraining"}  # fmt: skip
        rows = [
            (k, f"{v:.4f}" if isinstance(v, float) else v)
            for k, v in self.model_dump(exclude=exact).items()
            if v not in (None, [], "")
        ]
        rows += [(f"{k} (differentially private)", f"{v:,.0f}" if "rate" not in k else f"{v:.3f}")
                 for k, v in sorted(self.published.items())]  # fmt: skip
        return "\n".join(["| field | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)])


class RetrainingOutcome(BaseModel):
    """A retraining run: why it ran, on which window, and what the gates and the canary made of it."""

    domain: str
    reason: str
    status: Literal["retrained", "skipped", "failed"]
    note: str = ""
    split: SplitConfig | None = None
    # The new version's training outcome and its canary.
    training: DomainOutcome | None = None
    promotion: PromotionSummary | None = None

    @classmethod
    def of(
        cls,
        reason: str,
        window: RetrainingWindow,
        training: DomainOutcome | None = None,
        promotion: PromotionSummary | None = None,
    ) -> RetrainingOutcome:
        """Skipped without a window to train on; failed with the training; else retrained (and maybe canaried)."""
        if window.split is None or training is None:
            return cls(domain=window.domain, reason=reason, status="skipped", note=window.note)
        if training.status == "failed":
            return cls(domain=window.domain, reason=reason, status="failed", note=training.error or "training failed",
                       split=window.split)  # fmt: skip
        return cls(domain=window.domain, reason=reason, status="retrained", note=window.note, split=window.split,
                   training=training, promotion=promotion)  # fmt: skip

    def steps(self) -> list[str]:
        if self.status != "retrained":
            return [f"retraining {self.status} ({self.reason}): {self.note}"]
        training = self.training
        window = f"data to {self.split.test_until:%Y-%m-%d}" if self.split else "?"
        steps = [f"retrained v{training.version if training else '?'} on {window} ({self.reason}): "
                 f"{training.status if training else '-'}"]  # fmt: skip
        if self.promotion is not None and self.promotion.version:
            steps.append(f"canary v{self.promotion.version} {self.promotion.status.replace('_', ' ')}")
        return steps


DomainOutcome.model_rebuild()


def summarize_domain_run(
    config: PipelineConfig,
    data: DomainData,
    candidate: TrainedCandidate,
    evaluation: CandidateEvaluation,
    logged: LoggedRun,
    version: str,
    decision: GateDecision,
    *,
    flow_run_id: str = "",
) -> DomainOutcome:
    """The training run's outcome as one line of the run's table: what was kept, how it scored, what it became.

    `flow_run_id`: the flow run summing it up; a model another one logged is shown as reused.
    """
    domain, outcome, split = data.domain, data.validation, data.split
    tuning, optimized, scores = candidate.tuning, candidate.optimized, candidate.scores
    ratios = optimized.ratios() if evaluation.family == NETWORK else {}
    chosen = candidate.family(evaluation.family).model
    return DomainOutcome(
        domain=domain,
        status="registered" if decision.passed else "rejected",
        rows_in=outcome.rows_in,
        rows_kept=len(outcome.valid),
        rows_quarantined=len(outcome.quarantined),
        quarantine_path=str(outcome.quarantine_path) if outcome.quarantine_path else None,
        train_rows=len(split.train),
        family=evaluation.family,
        network_val_auc=scores.network["validation"]["auc"],
        boosting_val_auc=scores.gradient_boosting["validation"]["auc"],
        network_test_auc=scores.network["test"]["auc"],
        boosting_test_auc=scores.gradient_boosting["test"]["auc"],
        tuning_trials=tuning.n_trials,
        tuning_pruned=tuning.n_pruned,
        tuning_best_val_auc=tuning.best_value,
        served_variant=chosen.variant,
        size_ratio=ratios.get("size_ratio"),
        speedup=ratios.get(f"speedup_p50_b{config.optimization.serving_batch_size}"),
        served_auc_drop=optimized.chosen_report.auc_drop if evaluation.family == NETWORK else None,
        model_name=config.registered_model_name(domain),
        version=version,
        aliases=decision.aliases,
        gate=decision.reason,
        gate_reference=evaluation.verdict.reference,
        failed_checks=evaluation.verdict.failed_checks,
        run_id=logged.run_id,
        reused_run=logged.logged_before(flow_run_id),
        published=logged.published,
    )


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


@dataclass(frozen=True)
class LifecycleSummary:
    failed: bool  # a domain failed, or has no champion to serve: the run ends Failed, naming it
    message: str


def summarize_lifecycle(outcomes: list[DomainOutcome]) -> LifecycleSummary:
    """One line for the run's final state: the domains that failed or have no champion, were rejected, looped."""
    failed = [o.domain for o in outcomes if o.status == "failed"]
    unserved = [o.domain for o in outcomes if o.no_champion]
    rejected = [f"{o.domain} ({', '.join(o.failed_checks)})" for o in outcomes if o.status == "rejected"]
    note = f"; rejected by the gates: {', '.join(rejected)}" if rejected else ""
    canaries = [f"{o.domain} v{o.promotion.version} {o.promotion.status.replace('_', ' ')}"
                for o in outcomes if o.promotion is not None and o.promotion.version]  # fmt: skip
    note += f"; canary: {', '.join(canaries)}" if canaries else ""
    looped = [f"{o.domain} {o.timeline()[-1]}" for o in outcomes if o.monitoring is not None]
    note += f"; loop: {'; '.join(looped)}" if looped else ""
    heads = [f"{len(names)} of {len(outcomes)} domains {what}: {', '.join(names)}"
             for what, names in (("failed", failed), ("have no champion to serve", unserved)) if names]  # fmt: skip
    if heads:
        return LifecycleSummary(True, "; ".join(heads) + note)
    return LifecycleSummary(False, f"{len(outcomes) - len(rejected)} of {len(outcomes)} domains passed the gates{note}")


def artifact_key(*parts: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")


def stored_outcome(
    engine: Engine, source_fingerprint: str, config: PipelineConfig, trained: DomainOutcome
) -> DomainOutcome | None:
    """The domain's outcome as a run with the same inputs left it; None when none finished, or it made other versions.

    `trained` is this run's training outcome: when its version or MLflow run differ from the stored
    one (a version deleted by hand and registered again), the lifecycle runs again for the domain.
    """
    stored = read_lifecycle(engine, trained.domain, lifecycle_key(trained.domain, source_fingerprint, config))
    if stored is None:
        return None
    outcome = DomainOutcome.model_validate(stored.outcome)
    if (outcome.version, outcome.run_id) != (trained.version, trained.run_id):
        return None
    return outcome.model_copy(update={"unchanged_since": stored.describe(), "reused_run": True})


def stored_outcomes(
    engine: Engine, source_fingerprint: str, config: PipelineConfig, trained: list[DomainOutcome]
) -> list[DomainOutcome]:
    """Each domain in service with its stored outcome, when it has one (see stored_outcome); the others as given."""
    stored = [stored_outcome(engine, source_fingerprint, config, o) if o.in_service else None for o in trained]
    return [kept or outcome for kept, outcome in zip(stored, trained, strict=True)]


def keep_outcome(engine: Engine, source_fingerprint: str, config: PipelineConfig, outcome: DomainOutcome,
                 actor: str) -> None:  # fmt: skip
    """Store the domain's finished lifecycle under its inputs' key (see domainflow.store.lifecycles)."""
    key = lifecycle_key(outcome.domain, source_fingerprint, config)
    record_lifecycle(engine, outcome.domain, key, actor, outcome.model_dump(mode="json"))
