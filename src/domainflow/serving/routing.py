"""Which arm of a domain's rollout a request goes to."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from domainflow.store.rollouts import Arm


def route(request_id: str, arms: Sequence[Arm], salt: str = "") -> Arm:
    """The arm a request goes to: a stable hash of its id placed on the cumulative weights.

    The same id always lands on the same arm while the weights stay put, and raising a
    canary's weight only moves requests onto the canary (arms keep their order), which is
    what keeps a user's experience consistent through a ramp.
    """
    point = int.from_bytes(hashlib.blake2b(f"{salt}{request_id}".encode(), digest_size=8).digest(), "big") / 2**64
    cumulative = 0.0
    for arm in arms:
        cumulative += arm.weight
        if point < cumulative:
            return arm
    return next(arm for arm in reversed(arms) if arm.weight > 0)
