"""Per-key rate limits: requests and records per minute, by the key's role (`serving.rate_limits`).

The counting is the `limits` library's sliding-window counter: in this process's memory by default,
or in Redis when `DOMAINFLOW_REDIS_URL` is set, so that several server processes (replicas, workers)
share each key's budget instead of each granting it whole.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItemPerMinute
from limits.storage import storage_from_string
from limits.strategies import SlidingWindowCounterRateLimiter

from domainflow.config import RateLimit
from domainflow.redaction import without_passwords


@dataclass(frozen=True)
class Refusal:
    detail: str
    retry_after: int  # seconds, for the Retry-After header


class RateLimiter:
    """`charge(key_id, role, records)` counts one request of `records` records against the key's limits."""

    def __init__(self, limits: dict[str, RateLimit], storage_url: str | None = None):
        self.storage_url = storage_url or "memory://"
        self.limiter = SlidingWindowCounterRateLimiter(storage_from_string(self.storage_url))
        self.requests = {role: RateLimitItemPerMinute(limit.requests_per_minute, namespace="domainflow-requests")
                         for role, limit in limits.items() if limit.requests_per_minute}  # fmt: skip
        self.records = {role: RateLimitItemPerMinute(limit.records_per_minute, namespace="domainflow-records")
                        for role, limit in limits.items() if limit.records_per_minute}  # fmt: skip

    @property
    def in_memory(self) -> bool:
        """Counting is a dictionary update (no network round trip): cheap enough for an event loop."""
        return self.storage_url.startswith("memory://")

    def __repr__(self) -> str:
        return f"RateLimiter(storage={without_passwords(self.storage_url)!r})"

    def charge_request(self, key_id: str, role: str) -> Refusal | None:
        item = self.requests.get(role)
        if item is None or self.limiter.hit(item, key_id):
            return None
        return Refusal(f"key {key_id} sent more than {item.amount} requests in a minute (its {role} limit)",
                       self._retry_after(item, key_id))  # fmt: skip

    def charge_records(self, key_id: str, role: str, records: int) -> Refusal | None:
        item = self.records.get(role)
        if item is None or records <= 0:
            return None
        if records > item.amount:
            # No wait would make this fit: say so rather than send the client into a retry loop.
            return Refusal(f"{records} records in one request exceed key {key_id}'s limit of {item.amount} "
                           "a minute: send smaller batches", 60)  # fmt: skip
        if self.limiter.hit(item, key_id, cost=records):
            return None
        return Refusal(f"key {key_id} sent more than {item.amount} records in a minute (its {role} limit)",
                       self._retry_after(item, key_id))  # fmt: skip

    def _retry_after(self, item: RateLimitItemPerMinute, key_id: str) -> int:
        reset = self.limiter.get_window_stats(item, key_id).reset_time
        return max(1, math.ceil(reset - time.time()))
