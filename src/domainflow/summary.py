"""One line per domain: what the run kept, how the candidates scored, what the registry did.

The exact counts are for the operator's terminal; the report published as a
Prefect artifact carries the differentially private counts instead, as MLflow does.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel

from domainflow.config import PipelineConfig
from domainflow.data.split import TimeSplit
from domainflow.data.validation import ValidationOutcome
from domainflow.registry.mlflow_registry import GateDecision, LoggedRun
from domainflow.training.candidates import CandidateScores


class DomainOutcome(BaseModel):
    domain: str
    status: Literal["registered", "failed"]
    rows_in: int | None = None
    rows_kept: int | None = None
    rows_quarantined: int | None = None
    quarantine_path: str | None = None
    train_rows: int | None = None
    network_val_auc: float | None = None
    baseline_val_auc: float | None = None
    network_test_auc: float | None = None
    baseline_test_auc: float | None = None
    model_name: str | None = None
    version: str | None = None
    aliases: list[str] = []
    gate: str | None = None
    run_id: str | None = None
    reused_run: bool = False
    published: dict[str, float] = {}
    error: str | None = None

    @classmethod
    def failed(cls, domain: str, error: str) -> DomainOutcome:
        return cls(domain=domain, status="failed", error=error)

    def to_markdown(self) -> str:
        """A report for the Prefect UI: exact counts left out, private ones (dp_*) in."""
        exact = {"rows_in", "rows_kept", "rows_quarantined", "train_rows", "published"}
        rows = [
            (k, f"{v:.4f}" if isinstance(v, float) else v)
            for k, v in self.model_dump(exclude=exact).items()
            if v not in (None, [], "")
        ]
        rows += [(f"{k} (differentially private)", f"{v:,.0f}" if "rate" not in k else f"{v:.3f}")
                 for k, v in sorted(self.published.items())]  # fmt: skip
        return "\n".join(["| field | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)])


def summarize_domain(
    domain: str,
    config: PipelineConfig,
    outcome: ValidationOutcome,
    split: TimeSplit,
    scores: CandidateScores,
    logged: LoggedRun,
    version: str,
    decision: GateDecision,
) -> DomainOutcome:
    return DomainOutcome(
        domain=domain,
        status="registered",
        rows_in=outcome.rows_in,
        rows_kept=len(outcome.valid),
        rows_quarantined=len(outcome.quarantined),
        quarantine_path=str(outcome.quarantine_path) if outcome.quarantine_path else None,
        train_rows=len(split.train),
        network_val_auc=scores.network["validation"]["auc"],
        baseline_val_auc=scores.baseline["validation"]["auc"],
        network_test_auc=scores.network["test"]["auc"],
        baseline_test_auc=scores.baseline["test"]["auc"],
        model_name=config.registered_model_name(domain),
        version=version,
        aliases=decision.aliases,
        gate=decision.reason if decision.passed else f"failed: {decision.reason}",
        run_id=logged.run_id,
        reused_run=logged.reused,
        published=logged.published,
    )


def artifact_key(*parts: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")
