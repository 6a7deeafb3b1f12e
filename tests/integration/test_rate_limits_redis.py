"""Rate limits counted in Redis: two server processes (two limiters) share each key's budget."""

from __future__ import annotations

import os
import uuid

import pytest

from domainflow.access.rate_limits import RateLimiter
from domainflow.config import RateLimit

pytestmark = pytest.mark.integration

REDIS_URL = os.environ.get("DOMAINFLOW_TEST_REDIS", "redis://127.0.0.1:6379/0")


@pytest.fixture
def redis_url() -> str:
    """Skips with the reason where Redis is absent; in CI (CI=true) its absence is a failure."""
    redis = pytest.importorskip("redis")
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except redis.RedisError as error:
        message = f"Redis is not reachable at {REDIS_URL} ({error}); start it with: redis-server --daemonize yes"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return REDIS_URL


def test_two_servers_counting_in_redis_grant_a_key_one_budget_not_two(redis_url):
    limits = {"predictor": RateLimit(requests_per_minute=5, records_per_minute=50)}
    replica_a, replica_b = RateLimiter(limits, redis_url), RateLimiter(limits, redis_url)
    key = f"it-{uuid.uuid4().hex[:12]}"  # a fresh key: its own budget, whatever earlier runs left in Redis
    answers = [replica.charge_request(key, "predictor") for replica in (replica_a, replica_b) * 3]
    assert answers[:5] == [None] * 5
    refusal = answers[5]
    assert refusal is not None and "more than 5 requests in a minute" in refusal.detail
    assert 1 <= refusal.retry_after <= 60
    # Records: 30 on one replica, 20 on the other fill the minute's 50; one more is refused on either.
    assert replica_a.charge_records(key, "predictor", 30) is None
    assert replica_b.charge_records(key, "predictor", 20) is None
    assert replica_a.charge_records(key, "predictor", 1) is not None
    # Another key is untouched, and the limiter never shows the URL's password.
    assert replica_b.charge_request(f"{key}-other", "predictor") is None
    assert "secret" not in repr(RateLimiter(limits, "redis://:secret@127.0.0.1:6379/0"))
