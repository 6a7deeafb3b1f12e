"""Alias moves that the gate, promotion and rollback make, each audited and shown on the version's MLflow tags.

`champion` serves, `challenger` waits for (or is in) its canary, `canary` marks the version
receiving canary traffic, `previous-champion` keeps the version a promotion replaced so a
rollback knows where to go.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from domainflow.registry.domain_model import DomainModel
from domainflow.registry.mlflow_registry import (
    CHALLENGER,
    CHAMPION,
    PREVIOUS_CHAMPION,
    TAG,
    absent_in_registry,
    current_alias_version,
    registry_failure,
    version_tags_of,
)
from domainflow.store.audit import AuditEntry, record_audit
from domainflow.store.locks import Lease, domain_lock

CANARY = "canary"


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    reason: str
    aliases: list[str]  # the version's aliases after the verdict
    # The same verdict had already been applied to the version (a rerun): nothing was moved this time.
    unchanged: bool = False


def move_alias(
    model: DomainModel, alias: str, version: str | None, reason: str, actor: str, lease: Lease | None = None
) -> bool:
    """Point `alias` at `version` (None deletes it); audit and tag the change. False when nothing changed.

    Made under `lease`, the domain's lock the caller holds (confirmed just before the move), or
    under the lock taken for this one move.
    """
    if lease is None:
        with domain_lock(model.engine, model.domain, actor) as held:
            return _move(model, alias, version, reason, actor, held)
    return _move(model, alias, version, reason, actor, lease)


def _move(model: DomainModel, alias: str, version: str | None, reason: str, actor: str, lease: Lease) -> bool:
    client = model.client
    before = current_alias_version(client, model.name, alias)
    if before == version:
        return False
    lease.confirm()  # still ours, and renewed: the move below has a whole lease to finish in
    # Audited before the move: a crash in between leaves an entry for a move a retry then makes
    # (an entry twice at worst), never a moved alias that the log does not show.
    record_audit(model.engine, AuditEntry(domain=model.domain, action="alias", subject=alias, before=before,
                                          after=version, reason=reason, actor=actor))  # fmt: skip
    if version is None:
        client.delete_registered_model_alias(model.name, alias)
    else:
        client.set_registered_model_alias(model.name, alias, version)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    change = {"alias": alias, "from": before, "to": version, "reason": reason[:500], "actor": actor, "at": stamp}
    client.set_registered_model_tag(model.name, f"{TAG}last_alias_change", json.dumps(change))
    for touched, verb in ((version, "set"), (before, "removed")):
        if touched is not None:
            note = f"{verb} {stamp} by {actor}: {reason}"
            client.set_model_version_tag(model.name, touched, f"{TAG}alias.{alias}", note[:4_000])
    return True


def apply_gate_verdict(
    model: DomainModel,
    version: str,
    passed: bool,
    reason: str,
    failed_checks: list[str] | tuple = (),
    actor: str = "gate",
) -> GateDecision:
    """A passing version becomes `challenger`, and `champion` if the domain has none; once per verdict.

    Every version is tagged with the verdict, which is audited (`gate_verdict`); a failing one keeps no
    alias and names its failed checks, so the registry UI shows why it stopped there. The alias moves
    are audited and made under the domain's lock: of two versions gated at once on a domain without a
    champion, exactly one becomes it.
    """
    client, name = model.client, model.name
    applied = hashlib.sha256(f"{passed}|{reason}|{','.join(failed_checks)}".encode()).hexdigest()[:16]
    tags = version_tags_of(client, name, version)
    if tags.get(f"{TAG}gate_applied") == applied:
        # A rerun with the same inputs: its verdict stands as applied; the aliases the loop has moved
        # since (a promotion, a rollback) are not undone by applying it again.
        held = [alias for alias, held in client.get_registered_model(name).aliases.items() if str(held) == version]
        return GateDecision(passed=passed, reason=reason, aliases=sorted(held), unchanged=True)
    client.set_model_version_tag(name, version, f"{TAG}gate", "passed" if passed else "failed")
    client.set_model_version_tag(name, version, f"{TAG}gate_reason", reason[:4_000])
    client.set_model_version_tag(name, version, f"{TAG}gate_failed_checks", ",".join(failed_checks))
    note = f"gate {'passed' if passed else 'failed'}: {reason}"
    aliases: list[str] = []
    with domain_lock(model.engine, model.domain, actor) as lease:
        if not passed and current_alias_version(client, name, CHALLENGER) == version:
            # A re-gated version that no longer passes stops being the challenger.
            move_alias(model, CHALLENGER, None, note, actor, lease=lease)
        if passed:
            move_alias(model, CHALLENGER, version, note, actor, lease=lease)
            aliases.append(CHALLENGER)
            champion = current_alias_version(client, name, CHAMPION)
            if champion is None or champion == version:
                move_alias(model, CHAMPION, version, note, actor, lease=lease)
                aliases.append(CHAMPION)
    # Audited once it is applied, before it is marked so: a crash in between re-applies it (its alias moves
    # are then no-ops), and a failure before leaves no row for a verdict that changed nothing.
    earlier = tags.get(f"{TAG}gate") if f"{TAG}gate_applied" in tags else None
    verdict = {"passed": passed, "failed_checks": list(failed_checks)}
    record_audit(model.engine, AuditEntry(domain=model.domain, action="gate_verdict", subject=f"v{version}",
                                          before=earlier, after=verdict, reason=reason, actor=actor))  # fmt: skip
    client.set_model_version_tag(name, version, f"{TAG}gate_applied", applied)  # last: a crash before re-applies
    return GateDecision(passed=passed, reason=reason, aliases=aliases)


def promote(model: DomainModel, version: str, reason: str, actor: str) -> None:
    """`champion` moves to `version`; `previous-champion` keeps the old one; canary/challenger aliases are cleared."""
    client = model.client
    with domain_lock(model.engine, model.domain, actor) as lease:
        old = current_alias_version(client, model.name, CHAMPION)
        if old is not None and old != version:
            move_alias(model, PREVIOUS_CHAMPION, old, reason, actor, lease=lease)
        move_alias(model, CHAMPION, version, reason, actor, lease=lease)
        for alias in (CANARY, CHALLENGER):
            if current_alias_version(client, model.name, alias) == version:
                move_alias(model, alias, None, reason, actor, lease=lease)
    client.set_model_version_tag(model.name, version, f"{TAG}rollout", "promoted")


def roll_back(model: DomainModel, version: str, reason: str, actor: str) -> None:
    """The version loses `canary` and `challenger` (the champion keeps serving); the reason stays on its tags."""
    client = model.client
    with domain_lock(model.engine, model.domain, actor) as lease:
        for alias in (CANARY, CHALLENGER):
            if current_alias_version(client, model.name, alias) == version:
                move_alias(model, alias, None, reason, actor, lease=lease)
    client.set_model_version_tag(model.name, version, f"{TAG}rollout", "rolled_back")
    client.set_model_version_tag(model.name, version, f"{TAG}rollout_reason", reason[:4_000])


def restore_champion(model: DomainModel, version: str, reverted: str, reason: str, actor: str) -> None:
    """`champion` back to `version`, the one `reverted` replaced; `reverted` keeps the reason on its tags.

    `previous-champion` named `version`: it is dropped, as no version was replaced. A champion that is no
    longer `reverted` (an operator moved it) is left as it is.
    """
    client = model.client
    with domain_lock(model.engine, model.domain, actor) as lease:
        if current_alias_version(client, model.name, CHAMPION) == reverted:
            move_alias(model, CHAMPION, version, reason, actor, lease=lease)
        if current_alias_version(client, model.name, PREVIOUS_CHAMPION) == version:
            move_alias(model, PREVIOUS_CHAMPION, None, reason, actor, lease=lease)
    client.set_model_version_tag(model.name, reverted, f"{TAG}rollout", "reverted")
    client.set_model_version_tag(model.name, reverted, f"{TAG}rollout_reason", reason[:4_000])


def pending_challenger(tracking_uri: str, name: str) -> tuple[str, str] | None:
    """(challenger, champion) versions when the domain has a challenger that is not already its champion."""
    client = MlflowClient(tracking_uri)
    try:
        client.get_registered_model(name)
    except MlflowException as error:
        if absent_in_registry(error):
            return None
        raise registry_failure(error, f"reading {name}") from error
    challenger = current_alias_version(client, name, CHALLENGER)
    champion = current_alias_version(client, name, CHAMPION)
    if challenger is None or champion is None or challenger == champion:
        return None
    return challenger, champion


def admit_challenger(model: DomainModel, version: str, override_reason: str | None, actor: str) -> str | None:
    """None when `version` may go through a canary; otherwise why it is refused.

    A challenger set by hand (the MLflow UI or client) skips the gates that set the pipeline's
    own: its stored verdict (the `domainflow.gate` tag) must say it passed them. An operator may
    override a failed or missing verdict with a reason, which goes to the audit log and to the
    version's `domainflow.gate_override` tag.
    """
    client = model.client
    tags = version_tags_of(client, model.name, version)
    verdict = tags.get(f"{TAG}gate")
    if verdict == "passed":
        return None
    if verdict == "failed":
        checks = tags.get(f"{TAG}gate_failed_checks") or "unnamed checks"
        why = f"v{version} failed its gates ({checks}): {tags.get(f'{TAG}gate_reason', '')}".rstrip(": ")
    else:
        why = f"v{version} has no gate verdict: it was not registered through domainflow's gates"
    if not (override_reason and override_reason.strip()):
        return f"{why}; a challenger must have passed them, or be promoted with an override and its reason"
    entry = AuditEntry(domain=model.domain, action="gate_override", subject=f"v{version}", before=verdict,
                       after="canary", reason=override_reason, actor=actor)  # fmt: skip
    record_audit(model.engine, entry)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    note = f"{stamp} by {actor}: {override_reason} (overriding: {why})"
    client.set_model_version_tag(model.name, version, f"{TAG}gate_override", note[:4_000])
    return None


def record_approval(model: DomainModel, version: str, answer: dict) -> None:
    """A person's approval or rejection of `version`'s promotion (or its timeout), in the audit log and on its tags.

    `answer`: {"action": approval | rejection | approval_timeout, "outcome", "by", "reason"}. The
    `domainflow.approval*` tags show in MLflow's UI who decided and why.
    """
    entry = AuditEntry(domain=model.domain, action=answer["action"], subject=f"v{version}", before="awaiting approval",
                       after=answer["outcome"], reason=answer["reason"], actor=answer["by"])  # fmt: skip
    record_audit(model.engine, entry)
    client = model.client
    client.set_model_version_tag(model.name, version, f"{TAG}approval", answer["outcome"])
    client.set_model_version_tag(model.name, version, f"{TAG}approval_by", answer["by"][:4_000])
    client.set_model_version_tag(model.name, version, f"{TAG}approval_reason", answer["reason"][:4_000])
