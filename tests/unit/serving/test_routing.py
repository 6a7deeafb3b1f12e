from __future__ import annotations

import pytest

from domainflow.serving.routing import route
from domainflow.store.rollouts import Arm


def test_routing_is_stable_follows_the_weights_and_only_moves_requests_onto_the_canary():
    ids = [f"req-{i}" for i in range(20_000)]
    small = [Arm("champion", "1", 0.9), Arm("canary", "2", 0.1)]
    large = [Arm("champion", "1", 0.5), Arm("canary", "2", 0.5)]
    at_10 = [route(i, small).variant for i in ids]
    at_50 = [route(i, large).variant for i in ids]
    assert at_10 == [route(i, small).variant for i in ids]
    assert 0.09 < at_10.count("canary") / len(ids) < 0.11
    assert 0.48 < at_50.count("canary") / len(ids) < 0.52
    assert all(b == "canary" for a, b in zip(at_10, at_50, strict=True) if a == "canary")


def test_three_way_split_routes_in_proportion():
    arms = [Arm("a", "1", 0.5), Arm("b", "2", 0.3), Arm("c", "3", 0.2)]
    chosen = [route(f"id-{i}", arms).variant for i in range(30_000)]
    shares = {name: chosen.count(name) / len(chosen) for name in "abc"}
    assert shares == pytest.approx({"a": 0.5, "b": 0.3, "c": 0.2}, abs=0.015)
