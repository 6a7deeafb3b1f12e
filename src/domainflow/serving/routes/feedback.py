"""POST /feedback: observed labels joined to logged predictions by request id, all or nothing.

Labels steer canaries, monitoring and retraining, so each is checked before any is stored:
- it needs a `labeller` (or `admin`) key for the domain; the key's id is stored with the label;
- its request id must name a logged prediction of the same domain, and one that did not fail (422 if
  it did). A prediction may still be
  queued in a writer (this replica's, flushed first, or another's): the request waits up to
  `serving.label_wait_seconds`, looking again, before it is refused (404) naming the ids;
- the first label of an id stands: the same label again is a duplicate (200), the other label a
  conflict (409, counted per key in `domainflow_feedback_conflicts`).
A refused request stores none of its labels, so the client can fix it and send it again whole.
"""

# No `from __future__ import annotations`: FastAPI reads the route's body type, built from the config.

import time
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException

from domainflow.serving import schemas
from domainflow.serving.auth import LABEL, Caller, admit, require
from domainflow.serving.dependencies import known_domain, serving_state
from domainflow.serving.state import ServingState
from domainflow.store.prediction_log import FeedbackResult, record_feedback

ERRORS = {status: {"model": schemas.Message} for status in (401, 403, 404, 409, 422, 429, 503)}
# How often a label waiting for its prediction looks again.
_POLL_SECONDS = 0.1


def _named(ids: list[str], limit: int = 20) -> str:
    shown = ", ".join(map(repr, ids[:limit]))
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def build_router(bodies: schemas.RequestModels) -> APIRouter:
    router = APIRouter()

    @router.post("/feedback", response_model=schemas.FeedbackResponse, responses=ERRORS)
    def feedback(
        body: bodies.feedback, state: Annotated[ServingState, Depends(serving_state)],
        caller: Annotated[Caller, Depends(require(LABEL))],
    ):  # fmt: skip
        """Join observed labels to logged predictions by request id; all of them are stored, or none."""
        admit(state, caller, body.domain, len(body.labels))
        domain = known_domain(state, body.domain)
        labels = [(label.request_id, label.label) for label in body.labels]
        key_id = caller.provenance
        # Predictions are written behind the requests: without the flush, a label for one still
        # in this server's queue would be reported unknown.
        state.writer.flush()
        deadline = time.monotonic() + state.config.serving.label_wait_seconds
        result = record_feedback(state.engine, domain, labels, key_id=key_id)
        while result.unknown and not (result.conflicts or result.unscored) and time.monotonic() < deadline:
            time.sleep(_POLL_SECONDS)
            result = record_feedback(state.engine, domain, labels, key_id=key_id)
        _count(state, domain, key_id, result)
        if result.conflicts:
            raise HTTPException(409, f"{len(result.conflicts)} label(s) contradict the label stored first for "
                                     f"{_named(result.conflicts)}: the first label stands; no label of this "
                                     "request was stored")  # fmt: skip
        if result.unscored:
            raise HTTPException(422, f"the prediction for {_named(result.unscored)} failed (it has no score): it "
                                     "cannot be labelled; no label of this request was stored")  # fmt: skip
        if result.unknown:
            raise HTTPException(404, f"no scored prediction of {domain} is logged for request id(s) "
                                     f"{_named(result.unknown)} (waited {state.config.serving.label_wait_seconds:g} "
                                     "s); no label of this request was stored")  # fmt: skip
        return schemas.FeedbackResponse(accepted=result.accepted, duplicates=result.duplicates)

    return router


def _count(state: ServingState, domain: str, key_id: str, result: FeedbackResult) -> None:
    for outcome, count in (("accepted", result.accepted), ("duplicate", len(result.duplicates)),
                           ("unknown", len(result.unknown)), ("conflict", len(result.conflicts))):  # fmt: skip
        if count:
            state.metrics.feedback.labels(domain, outcome).inc(count)
    if result.conflicts:
        state.metrics.feedback_conflicts.labels(domain, key_id).inc(len(result.conflicts))
