"""Checking a presented token: who it is, whether it still works, and what its role may do.

A server checks a token against the database once per `key_cache_seconds` (default 5): a revoked
key stops working within that time, and a request costs a dictionary lookup, not a query. When
the database cannot be reached, a key checked good in the last `STALE_SECONDS` keeps working
(logged): an outage of the state database should not stop predictions, which the log writer
queues meanwhile. A key never seen good is refused (503) until the database answers again.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from domainflow.access.keys import (
    ADMIN,
    ALL_DOMAINS,
    LABELLER,
    OPERATOR,
    PREDICTOR,
    ApiKey,
    find_key,
    parse_token,
    secret_hash,
)

logger = logging.getLogger(__name__)

# What each action needs: the roles that may do it. Admin may do everything.
PREDICT, LABEL, READ_ROLLOUTS, ROLL_BACK, CHANGE_WEIGHTS = (
    "predict", "label", "read rollouts", "roll back", "change weights"
)  # fmt: skip
ALLOWED = {
    PREDICT: (PREDICTOR, ADMIN),
    LABEL: (LABELLER, ADMIN),
    READ_ROLLOUTS: (OPERATOR, ADMIN),
    ROLL_BACK: (OPERATOR, ADMIN),
    CHANGE_WEIGHTS: (ADMIN,),
}
STALE_SECONDS = 600.0
_ASK = object()  # the cache cannot tell: ask the database
# Checked tokens kept per server; past it the cache starts again (a flood of random tokens cannot grow it).
MAX_CACHED = 10_000


class Refused(Exception):
    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status = status  # 401: who are you; 403: not allowed; 429: too many; 503: cannot check now
        self.detail = detail


@dataclass(frozen=True)
class Caller:
    actor: str  # who the audit log and the prediction log name: "key/<id>", "admin-token", "anonymous"
    role: str
    key_id: str | None = None
    domains: tuple[str, ...] = (ALL_DOMAINS,)

    @property
    def provenance(self) -> str:
        """What the prediction log, the labels and the rate limits know the caller by: its key, or its actor."""
        return self.key_id or self.actor

    def check_domain(self, domain: str) -> None:
        if ALL_DOMAINS not in self.domains and domain not in self.domains:
            raise Refused(403, f"key {self.key_id} may act on {', '.join(self.domains)} only, not {domain}")


def authorize(caller: Caller, action: str) -> Caller:
    roles = ALLOWED[action]
    if caller.role not in roles:
        raise Refused(403, f"key {caller.provenance} has role {caller.role}; to {action} needs role "
                           f"{' or '.join(roles)}")  # fmt: skip
    return caller


class KeyChecker:
    def __init__(self, engine: Engine, cache_seconds: float = 5.0, stale_seconds: float = STALE_SECONDS):
        self.engine, self.cache_seconds, self.stale_seconds = engine, cache_seconds, stale_seconds
        self._cache: dict[str, tuple[float, ApiKey | None]] = {}  # sha256(token) -> (checked at, key)
        self._lock = threading.Lock()

    def caller(self, token: str | None, lookup: bool = True) -> Caller | None:
        """The caller `token` proves; Refused (401 or 503) naming what is wrong with it.

        `lookup=False` answers from the cache alone, None when the database must be asked: a server on an
        event loop checks a fresh key inline and sends only the look-ups to a thread.
        """
        if not token:
            raise Refused(401, "this route needs an API key: send `Authorization: Bearer <key>` "
                               "(`domainflow keys create` makes one)")  # fmt: skip
        key_id = parse_token(token)
        if key_id is None:
            raise Refused(401, "malformed API key: a key looks like dfk_<16 hex digits>_<43 characters>, "
                               "as `domainflow keys create` printed it")  # fmt: skip
        key = self._lookup(token, key_id, lookup)
        if key is _ASK:
            return None
        if key is None:
            raise Refused(401, f"unknown API key {key_id} (or its secret is wrong)")
        now = time.time()
        status = key.status(now)
        if status == "revoked":
            raise Refused(401, f"API key {key_id} was revoked at {_when(key.revoked_at)} by {key.revoked_by}")
        if status == "expired":
            raise Refused(401, f"API key {key_id} expired at {_when(key.expires_at)}")
        return Caller(actor=f"key/{key_id}", role=key.role, key_id=key_id, domains=key.domains)

    def _lookup(self, token: str, key_id: str, lookup: bool = True):
        digest = secret_hash(token)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and now - cached[0] < self.cache_seconds:
            return cached[1]
        if not lookup:
            return _ASK
        try:
            key = find_key(self.engine, token)
        except SQLAlchemyError as error:
            if cached is not None and cached[1] is not None and now - cached[0] < self.stale_seconds:
                logger.warning("key %s: the database cannot be reached (%s); using its check of %.0f s ago",
                               key_id, type(error).__name__, now - cached[0])  # fmt: skip
                return cached[1]
            raise Refused(503, "the API keys cannot be checked now (the state database does not answer); "
                               "retry shortly") from None  # fmt: skip
        with self._lock:
            if len(self._cache) >= MAX_CACHED:
                self._cache.clear()
            self._cache[digest] = (now, key)
        return key


def _when(at: float | None) -> str:
    return "?" if at is None else datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
