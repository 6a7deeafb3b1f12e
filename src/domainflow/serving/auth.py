"""Who is calling, and whether their role may use a route: one dependency per role, `Depends(require("admin"))`.

Today only `admin` is a role with a credential: the bearer token DOMAINFLOW_ADMIN_TOKEN (no token
configured: the admin routes are off, 403). The other routes declare no role yet; per-key roles
and domain scopes extend `require` without touching the routes.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from domainflow.serving.dependencies import serving_state
from domainflow.serving.state import ServingState

ADMIN = "admin"
bearer = HTTPBearer(auto_error=False, description="The admin token (DOMAINFLOW_ADMIN_TOKEN).")


@dataclass(frozen=True)
class Caller:
    actor: str  # who the audit log names for what the caller changes
    role: str


def _admin(credentials: HTTPAuthorizationCredentials | None, state: ServingState) -> Caller:
    token = state.settings.admin_token
    if not token:
        raise HTTPException(403, "admin routes are disabled: set DOMAINFLOW_ADMIN_TOKEN")
    given = credentials.credentials.encode() if credentials else b""
    if not secrets.compare_digest(given, token.encode()):
        raise HTTPException(401, "admin routes need `Authorization: Bearer <DOMAINFLOW_ADMIN_TOKEN>`",
                            headers={"WWW-Authenticate": "Bearer"})  # fmt: skip
    return Caller(actor="admin-api", role=ADMIN)


_CHECKS = {ADMIN: _admin}


def require(role: str) -> Callable[..., Caller]:
    """The dependency a route declares to be used by `role` only; it answers 401/403 naming what is missing."""
    if role not in _CHECKS:
        raise ValueError(f"unknown role {role!r}; known: {sorted(_CHECKS)}")
    check = _CHECKS[role]

    def caller(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
        state: Annotated[ServingState, Depends(serving_state)],
    ) -> Caller:
        return check(credentials, state)

    return caller
