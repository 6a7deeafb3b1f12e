"""Who is calling, and whether they may: one dependency per action, `Depends(require(PREDICT))`.

A caller shows an API key (`Authorization: Bearer dfk_...`, see domainflow.access.keys) or, for the
admin's bootstrap, DOMAINFLOW_ADMIN_TOKEN. Missing, malformed, unknown, revoked or expired: 401.
A role that may not do the route's action, or a key for other domains: 403. Over the key's rate
limit: 429 with Retry-After. Each answer's JSON body names what is missing.

With `serving.authentication: none` (an explicit choice, logged loudly at startup), predicting,
labelling and reading rollouts are open to anyone; a key sent anyway still names the caller, and
the admin's actions still need a key or the token.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Annotated

import anyio.to_thread
from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from domainflow.access.authentication import (
    ALLOWED,
    CHANGE_WEIGHTS,
    LABEL,
    PREDICT,
    READ_ROLLOUTS,
    ROLL_BACK,
    Caller,
    Refused,
    authorize,
)
from domainflow.access.keys import ADMIN, LABELLER, OPERATOR, PREDICTOR
from domainflow.access.rate_limits import Refusal as Limited
from domainflow.serving.dependencies import serving_state
from domainflow.serving.state import ServingState

__all__ = ["CHANGE_WEIGHTS", "LABEL", "PREDICT", "READ_ROLLOUTS", "ROLL_BACK", "Caller", "admit", "require"]

bearer = HTTPBearer(auto_error=False, description="An API key (`domainflow keys create`) or DOMAINFLOW_ADMIN_TOKEN.")
ADMIN_TOKEN_ACTOR = "admin-token"
ANONYMOUS = "anonymous"
# What `serving.authentication: none` opens, and whose rate limit an anonymous caller is counted under.
OPEN_WITHOUT_KEYS = {PREDICT: PREDICTOR, LABEL: LABELLER, READ_ROLLOUTS: OPERATOR}


def _identify(token: str | None, action: str, state: ServingState, lookup: bool = True) -> Caller | None:
    """The caller, allowed to do `action`; None when `lookup` is off and the key must be looked up."""
    admin_token = state.settings.admin_token
    if token and admin_token and secrets.compare_digest(token.encode(), admin_token.encode()):
        return Caller(actor=ADMIN_TOKEN_ACTOR, role=ADMIN)
    if not token and state.config.serving.authentication == "none" and action in OPEN_WITHOUT_KEYS:
        return Caller(actor=ANONYMOUS, role=OPEN_WITHOUT_KEYS[action])
    who = state.keys.caller(token, lookup=lookup)
    return None if who is None else authorize(who, action)


def _charge(state: ServingState, who: Caller) -> None:
    _refuse_if_limited(state.rate_limiter.charge_request(who.provenance, who.role))


def _refuse_if_limited(too_many: Limited | None) -> None:
    if too_many is not None:
        raise HTTPException(429, too_many.detail, headers={"Retry-After": str(too_many.retry_after)})


def _refusal(refused: Refused) -> HTTPException:
    headers = {"WWW-Authenticate": "Bearer"} if refused.status == 401 else None
    return HTTPException(refused.status, refused.detail, headers=headers)


def require(action: str) -> Callable[..., Caller]:
    """The dependency a route declares for `action`; 401/403/429 naming what is missing or exceeded."""
    if action not in ALLOWED:
        raise ValueError(f"unknown action {action!r}")

    async def caller(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
        state: Annotated[ServingState, Depends(serving_state)],
    ) -> Caller:
        # On the event loop while it costs microseconds (a cached key, limits counted in memory); a look-up
        # in the database or a count in Redis goes to a thread. A sync dependency would always take the
        # thread hop: in benchmarks/serving_latency.py that was most of the keys' cost (+0.5-1 ms at p50).
        token = credentials.credentials if credentials else None
        try:
            who = _identify(token, action, state, lookup=False)
            if who is None:
                who = await anyio.to_thread.run_sync(_identify, token, action, state)
        except Refused as refused:
            raise _refusal(refused) from None
        if state.rate_limiter.in_memory:
            _charge(state, who)
        else:
            await anyio.to_thread.run_sync(_charge, state, who)
        return who

    return caller


def admit(state: ServingState, caller: Caller, domain: str, records: int = 0) -> None:
    """The caller may act on `domain` (403) and send `records` more records this minute (429)."""
    try:
        caller.check_domain(domain)
    except Refused as refused:
        raise _refusal(refused) from None
    _refuse_if_limited(state.rate_limiter.charge_records(caller.provenance, caller.role, records))
