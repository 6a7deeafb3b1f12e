"""The domains' rollouts: GET /rollouts/{domain} to read; the admin's PUT and rollback to change them."""

# No `from __future__ import annotations`: FastAPI reads the path type, built from the configured domains.

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path

from domainflow.registry.mlflow_registry import version_exists
from domainflow.serving import schemas
from domainflow.serving.auth import ADMIN, Caller, require
from domainflow.serving.dependencies import known_domain, serving_state, serving_table
from domainflow.serving.state import ServingState, rollout_view
from domainflow.store.rollouts import CHAMPION_ARM, Arm, RolloutConflict, RolloutError, set_rollout

ERRORS = {404: {"model": schemas.Message}, 409: {"model": schemas.Message}, 503: {"model": schemas.Message}}
ADMIN_ERRORS = {**ERRORS, 401: {"model": schemas.Message}, 403: {"model": schemas.Message}}

State = Annotated[ServingState, Depends(serving_state)]
Admin = Annotated[Caller, Depends(require(ADMIN))]


def _apply(state: ServingState, domain: str, arms: list[Arm], reason: str, caller: Caller) -> schemas.RolloutView:
    name = state.config.registered_model_name(domain)
    try:
        set_rollout(state.engine, domain, name, arms, reason, actor=caller.actor)
    except RolloutError as error:
        raise HTTPException(422, f"invalid rollout: {error}") from None
    except RolloutConflict as error:
        raise HTTPException(409, str(error)) from None
    # Load and swap now, so the answer shows what serves.
    state.refresher.refresh()
    return rollout_view(domain, serving_table(state, domain))


def build_router(domains: list[str]) -> APIRouter:
    """The rollout routes; the path's schema lists `domains` (any other is answered with a 404 naming them)."""
    router = APIRouter()
    DomainPath: Any = Annotated[str, Path(json_schema_extra={"enum": domains})]

    @router.get("/rollouts/{domain}", response_model=schemas.RolloutView, responses=ERRORS)
    def show_rollout(domain: DomainPath, state: State):
        """The domain's arms, weights and revision, and which versions are loaded."""
        return rollout_view(domain, serving_table(state, known_domain(state, domain)))

    @router.put("/admin/rollouts/{domain}", response_model=schemas.RolloutView, responses=ADMIN_ERRORS)
    def put_rollout(domain: DomainPath, body: schemas.RolloutChange, state: State, caller: Admin):
        """Replace the domain's arms and weights (they must sum to 1); audited as admin-api."""
        name = state.config.registered_model_name(known_domain(state, domain))
        client = state.refresher.client
        missing = sorted({arm.version for arm in body.arms if not version_exists(client, name, arm.version)}, key=int)
        if missing:
            raise HTTPException(422, f"{name} has no version {', '.join(missing)}: register it first")
        return _apply(state, domain, [Arm(a.variant, a.version, a.weight) for a in body.arms], body.reason, caller)

    @router.post("/admin/rollouts/{domain}/rollback", response_model=schemas.RolloutView, responses=ADMIN_ERRORS)
    def rollback(domain: DomainPath, body: schemas.RollbackRequest, state: State, caller: Admin):
        """All traffic to the version the `champion` alias names."""
        name = state.config.registered_model_name(known_domain(state, domain))
        champion = state.refresher.champion_version(name)
        if champion is None:
            raise HTTPException(409, f"{name} has no champion alias: nothing to roll back to")
        return _apply(state, domain, [Arm(CHAMPION_ARM, champion, 1.0)], body.reason, caller)

    return router
