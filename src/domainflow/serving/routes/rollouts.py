"""The domains' rollouts: GET /rollouts/{domain} to read; the admin's PUT and rollback to change them.

Every answer carries the rollout's revision as its ETag (`"0"` while the domain has no rollout).
A change may send it back as `If-Match`; when the rollout moved on since, the change is refused
with a 409 that names the current revision (and carries it as its ETag), so an operator never
overwrites a change they did not see.

A change ends the domain's running canary promotion in the same transaction (ABORTED, "ended
by operator key/<id>: <reason>"), so its controller cannot write its weights over it or go
on to promote; the canary loses its aliases at once, and the operator's weights stand.
"""

# No `from __future__ import annotations`: FastAPI reads the path type, built from the configured domains.

import logging
import re
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Response

from domainflow.registry.aliases import roll_back
from domainflow.registry.domain_model import DomainModel
from domainflow.registry.mlflow_registry import version_exists
from domainflow.serving import schemas
from domainflow.serving.auth import CHANGE_WEIGHTS, READ_ROLLOUTS, ROLL_BACK, Caller, admit, require
from domainflow.serving.dependencies import known_domain, serving_state, serving_table
from domainflow.serving.state import ServingState, rollout_view
from domainflow.store.promotions import PromotionConflict, PromotionState, mark_settled, override_rollout
from domainflow.store.rollouts import CHAMPION_ARM, Arm, RolloutConflict, RolloutError, read_rollout

logger = logging.getLogger(__name__)

ERRORS = {status: {"model": schemas.Message} for status in (401, 403, 404, 409, 429, 503)}
ADMIN_ERRORS = {**ERRORS, 400: {"model": schemas.Message}}

State = Annotated[ServingState, Depends(serving_state)]
Reader = Annotated[Caller, Depends(require(READ_ROLLOUTS))]
WeightSetter = Annotated[Caller, Depends(require(CHANGE_WEIGHTS))]
RollBacker = Annotated[Caller, Depends(require(ROLL_BACK))]
IfMatch = Annotated[
    str | None,
    Header(
        description='The ETag of the rollout this change was decided on (GET /rollouts/{domain}), e.g. "3"; '
        "a 409 naming the current revision when the rollout has changed since. Without it the change "
        "applies to whatever revision is current."
    ),
]

_ENTITY_TAG = re.compile(r'"([0-9]{1,10})"|([0-9]{1,10})')


def _etag(revision: int | None) -> str:
    return f'"{revision or 0}"'


def _expected_revision(if_match: str | None) -> int | None:
    """The revision an If-Match names; None without one (or `*`: a rollout, or the champion alias, always serves)."""
    if if_match is None or if_match.strip() == "*":
        return None
    match = _ENTITY_TAG.fullmatch(if_match.strip())
    if match is None:
        raise HTTPException(
            400, f'If-Match takes the ETag that GET /rollouts/{{domain}} answers, one revision such as "3"; '
            f"got {if_match[:100]!r}"
        )  # fmt: skip
    return int(match.group(1) or match.group(2))


def _conflict(state: ServingState, domain: str, expected: int | None) -> HTTPException:
    current = read_rollout(state.engine, domain)
    revision = current.revision if current else 0
    if expected is None:
        detail = (f"the rollout of {domain} changed while this change was being written; it is now at revision "
                  f"{revision}: read it (GET /rollouts/{domain}) and send the change again")  # fmt: skip
    else:
        detail = (f"the rollout of {domain} is at revision {revision}, not {expected} (If-Match): it changed since "
                  f"you read it; read it again (GET /rollouts/{domain}) before changing it")  # fmt: skip
    return HTTPException(409, detail, headers={"ETag": _etag(revision)})


def _settle_ended(state: ServingState, model: DomainModel, ended: PromotionState, caller: Caller) -> None:
    """The promotion the change ended gives up its `canary` and `challenger` aliases; the rollout is the operator's.

    Its controller does the same when it notices, so a registry that fails here only delays it:
    the change is made either way.
    """
    logger.info("promotion ended domain=%s version=%s by=%s reason=%r", model.domain, ended.version, caller.actor,
                ended.reason)  # fmt: skip
    try:
        roll_back(model, ended.version, ended.reason, caller.actor)
        mark_settled(state.engine, model.domain, ended.version, time.time())
    except Exception:
        logger.exception("%s: the promotion of v%s ended, but its aliases were not taken back", model.domain,
                         ended.version)  # fmt: skip


def _apply(
    state: ServingState, domain: str, arms: list[Arm], reason: str, caller: Caller, expected: int | None
) -> schemas.RolloutView:
    name = state.config.registered_model_name(domain)
    try:
        written, ended = override_rollout(state.engine, domain, name, arms, reason, caller.actor, expected)
    except RolloutError as error:
        raise HTTPException(422, f"invalid rollout: {error}") from None
    except RolloutConflict:
        raise _conflict(state, domain, expected) from None
    except PromotionConflict as error:
        raise HTTPException(409, str(error)) from None
    if ended is not None:
        model = DomainModel(domain=domain, name=name, tracking_uri=state.settings.tracking_uri, engine=state.engine)
        _settle_ended(state, model, ended, caller)
    # Load and swap now, so the answer shows what serves. The answer is this write's, even when a
    # later writer's rollout already serves.
    table = state.refresher.refresh().get(domain)
    if table is None or table.revision != written.revision:
        table = state.refresher.table_for(domain, written)
    return rollout_view(domain, table)


def build_router(domains: list[str]) -> APIRouter:
    """The rollout routes; the path's schema lists `domains` (any other is answered with a 404 naming them)."""
    router = APIRouter()
    DomainPath: Any = Annotated[str, Path(json_schema_extra={"enum": domains})]

    @router.get("/rollouts/{domain}", response_model=schemas.RolloutView, responses=ERRORS)
    def show_rollout(domain: DomainPath, state: State, caller: Reader, response: Response):
        """The domain's arms, weights and revision, and which versions are loaded; the revision is also the ETag.

        Needs an `operator` (or `admin`) key for the domain.
        """
        admit(state, caller, domain)
        view = rollout_view(domain, serving_table(state, known_domain(state, domain)))
        response.headers["ETag"] = _etag(view.revision)
        return view

    @router.put("/admin/rollouts/{domain}", response_model=schemas.RolloutView, responses=ADMIN_ERRORS)
    def put_rollout(
        domain: DomainPath, body: schemas.RolloutChange, state: State, caller: WeightSetter, response: Response,
        if_match: IfMatch = None,
    ):  # fmt: skip
        """Replace the domain's arms and weights (they must sum to 1); needs an `admin` key; audited with its id.

        A running canary promotion of the domain ends with the change ("ended by operator"): its
        controller stops without touching the weights, and the version loses its canary alias.

        `If-Match` is optional, so scripts written before it keep working, but send it: with the
        ETag you read, a change made since is a 409 naming the current revision instead of being
        overwritten. Without it the change applies to whatever is current; one racing another
        write at the same instant may still get a 409 (send it again), never a 500. The answer
        (and its ETag) is the rollout as this change wrote it.
        """
        admit(state, caller, domain)
        name = state.config.registered_model_name(known_domain(state, domain))
        expected = _expected_revision(if_match)
        client = state.refresher.client
        missing = sorted({arm.version for arm in body.arms if not version_exists(client, name, arm.version)}, key=int)
        if missing:
            raise HTTPException(422, f"{name} has no version {', '.join(missing)}: register it first")
        arms = [Arm(a.variant, a.version, a.weight) for a in body.arms]
        view = _apply(state, domain, arms, body.reason, caller, expected)
        response.headers["ETag"] = _etag(view.revision)
        return view

    @router.post("/admin/rollouts/{domain}/rollback", response_model=schemas.RolloutView, responses=ADMIN_ERRORS)
    def rollback(
        domain: DomainPath, body: schemas.RollbackRequest, state: State, caller: RollBacker, response: Response,
        if_match: IfMatch = None,
    ):  # fmt: skip
        """All traffic to the version the `champion` alias names; a running canary promotion ends with it.

        Needs an `operator` (or `admin`) key for the domain; audited with its id.

        `If-Match` as for PUT, optional: a rollback in an incident should not need a read first.
        """
        admit(state, caller, domain)
        name = state.config.registered_model_name(known_domain(state, domain))
        expected = _expected_revision(if_match)
        champion = state.refresher.champion_version(name)
        if champion is None:
            raise HTTPException(409, f"{name} has no champion alias: nothing to roll back to")
        view = _apply(state, domain, [Arm(CHAMPION_ARM, champion, 1.0)], body.reason, caller, expected)
        response.headers["ETag"] = _etag(view.revision)
        return view

    return router
