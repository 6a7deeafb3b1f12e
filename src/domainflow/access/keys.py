"""API keys: who may call the prediction server, in which role, for which domains.

A key is shown once, when it is created: `dfk_<key id>_<secret>`. The key id is public (logs, the
audit, the prediction log name it); the database keeps only the SHA-256 of the whole token. A slow
password hash (bcrypt, argon2) would add milliseconds to every request for nothing: it protects
guessable human passwords, while the secret here is 256 random bits, which no hash speed makes
guessable. Tokens are compared in constant time.

Creating and revoking a key are audited (action `key`), with who did it.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Iterator, MutableMapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace

from sqlalchemy import Engine, insert, select, update

from domainflow.config import unsafe_domain_names
from domainflow.settings import LABELLER_KEY_VARIABLE, PREDICTOR_KEY_VARIABLE, ClientKeys
from domainflow.store.audit import AuditEntry, append_audit
from domainflow.store.schema import api_keys

PREDICTOR, LABELLER, OPERATOR, ADMIN = "predictor", "labeller", "operator", "admin"
ROLES = (PREDICTOR, LABELLER, OPERATOR, ADMIN)
ALL_DOMAINS = "*"
# The audit's domain for rows about keys, which belong to no one domain.
AUDIT_DOMAIN = "*"
PREFIX = "dfk"
_TOKEN = re.compile(rf"{PREFIX}_([0-9a-f]{{16}})_([A-Za-z0-9_-]{{43}})")


class KeyRequestError(ValueError):
    """A key that cannot be created or revoked as asked; the message says why."""


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    name: str
    role: str
    domains: tuple[str, ...]
    created_at: float
    created_by: str
    expires_at: float | None = None
    revoked_at: float | None = None
    revoked_by: str | None = None

    def status(self, now: float | None = None) -> str:
        """active, expired or revoked."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= (time.time() if now is None else now):
            return "expired"
        return "active"


@dataclass(frozen=True)
class CreatedKey:
    key: ApiKey
    token: str  # the only time it exists outside the caller's hands


def secret_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def parse_token(token: str) -> str | None:
    """The key id of a well-formed token; None for anything else."""
    match = _TOKEN.fullmatch(token)
    return match.group(1) if match else None


def _check(role: str, domains: Sequence[str], name: str, expires_at: float | None) -> tuple[str, ...]:
    if role not in ROLES:
        raise KeyRequestError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    if not domains:
        raise KeyRequestError(f"a key needs the domains it may act on (or {ALL_DOMAINS!r} for all)")
    bad = unsafe_domain_names([d for d in domains if d != ALL_DOMAINS])
    if bad:
        raise KeyRequestError(f"invalid domain name(s) {', '.join(map(repr, bad))}: letters, digits, '.', '_', '-'")
    if not name.strip() or len(name) > 200:
        raise KeyRequestError("a key's name says what uses it: 1 to 200 characters")
    if expires_at is not None and expires_at <= time.time():
        raise KeyRequestError("the key would be expired already: give an expiry in the future")
    return (ALL_DOMAINS,) if ALL_DOMAINS in domains else tuple(sorted(set(domains)))


def create_key(
    engine: Engine, role: str, domains: Sequence[str], name: str, actor: str, expires_at: float | None = None
) -> CreatedKey:
    """A new key with `role` for `domains`; its token is in the answer and nowhere else."""
    scope = _check(role, domains, name, expires_at)
    key_id = secrets.token_hex(8)
    token = f"{PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
    key = ApiKey(key_id=key_id, name=name.strip(), role=role, domains=scope, created_at=time.time(),
                 created_by=actor, expires_at=expires_at)  # fmt: skip
    with engine.begin() as connection:
        connection.execute(insert(api_keys).values(
            key_id=key.key_id, name=key.name, role=key.role, domains=list(key.domains),
            secret_hash=secret_hash(token), created_at=key.created_at, created_by=actor, expires_at=expires_at,
        ))  # fmt: skip
        append_audit(connection, AuditEntry(
            domain=AUDIT_DOMAIN, action="key", subject=key_id, before=None, after=_shown(key),
            reason=f"key created: {key.name}", actor=actor, at=key.created_at,
        ))  # fmt: skip
    return CreatedKey(key, token)


def revoke_key(engine: Engine, key_id: str, actor: str, reason: str) -> ApiKey:
    """Revoke `key_id` at once (servers notice within their key cache's seconds); revoking twice is refused."""
    now = time.time()
    with engine.begin() as connection:
        row = connection.execute(select(api_keys).where(api_keys.c.key_id == key_id)).first()
        if row is None:
            raise KeyRequestError(f"no key {key_id!r}: `domainflow keys list` shows them")
        if row.revoked_at is not None:
            raise KeyRequestError(f"key {key_id} was revoked already, by {row.revoked_by}")
        connection.execute(update(api_keys).where(api_keys.c.key_id == key_id).values(revoked_at=now, revoked_by=actor))
        key = _key(row)
        append_audit(connection, AuditEntry(
            domain=AUDIT_DOMAIN, action="key", subject=key_id, before=_shown(key), after={"status": "revoked"},
            reason=reason or "revoked", actor=actor, at=now,
        ))  # fmt: skip
    return replace(key, revoked_at=now, revoked_by=actor)


def list_keys(engine: Engine) -> list[ApiKey]:
    with engine.connect() as connection:
        rows = connection.execute(select(api_keys).order_by(api_keys.c.created_at)).all()
    return [_key(row) for row in rows]


def find_key(engine: Engine, token: str) -> ApiKey | None:
    """The key `token` is, whatever its status; None for a malformed or unknown token (or a wrong secret)."""
    key_id = parse_token(token)
    if key_id is None:
        return None
    with engine.connect() as connection:
        row = connection.execute(select(api_keys).where(api_keys.c.key_id == key_id)).first()
    if row is None or not secrets.compare_digest(row.secret_hash, secret_hash(token)):
        return None
    return _key(row)


def _key(row) -> ApiKey:
    return ApiKey(key_id=row.key_id, name=row.name, role=row.role, domains=tuple(row.domains),
                  created_at=row.created_at, created_by=row.created_by, expires_at=row.expires_at,
                  revoked_at=row.revoked_at, revoked_by=row.revoked_by)  # fmt: skip


def _shown(key: ApiKey) -> dict:
    return {"name": key.name, "role": key.role, "domains": list(key.domains), "expires_at": key.expires_at}


@contextmanager
def temporary_client_keys(
    engine: Engine,
    domains: Sequence[str],
    actor: str,
    hours: float = 24,
    environ: MutableMapping[str, str] | None = None,
) -> Iterator[ClientKeys]:
    """A predictor key and a labeller key for `domains`, revoked when the block ends (and expiring in `hours`
    should the process die first): what `domainflow run` gives the replay client of its own server.

    With `environ` (os.environ), the keys are also its DOMAINFLOW_PREDICTOR_KEY and DOMAINFLOW_LABELLER_KEY
    for the block, where the replay of a flow run in this process finds them; the values before come back after.
    """
    expires_at = time.time() + hours * 3600
    created = [create_key(engine, role, domains, f"{actor}: replay {role}", actor, expires_at)
               for role in (PREDICTOR, LABELLER)]  # fmt: skip
    keys = ClientKeys(predictor=created[0].token, labeller=created[1].token)
    exported = {PREDICTOR_KEY_VARIABLE: keys.predictor, LABELLER_KEY_VARIABLE: keys.labeller}
    before = {name: environ.get(name) for name in exported} if environ is not None else {}
    if environ is not None:
        environ.update(exported)
    try:
        yield keys
    finally:
        for name, value in before.items():
            if value is None:
                environ.pop(name, None)
            else:
                environ[name] = value
        for made in created:
            revoke_key(engine, made.key.key_id, actor, "the run that created it ended")
