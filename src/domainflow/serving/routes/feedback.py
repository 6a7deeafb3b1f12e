"""POST /feedback: observed labels joined to logged predictions by request id."""

# No `from __future__ import annotations`: FastAPI reads the route's body type, built from the config.

from typing import Annotated

from fastapi import APIRouter, Depends

from domainflow.serving import schemas
from domainflow.serving.dependencies import known_domain, serving_state
from domainflow.serving.state import ServingState
from domainflow.store.prediction_log import record_feedback

ERRORS = {404: {"model": schemas.Message}, 409: {"model": schemas.Message}, 503: {"model": schemas.Message}}


def build_router(bodies: schemas.RequestModels) -> APIRouter:
    router = APIRouter()

    @router.post("/feedback", response_model=schemas.FeedbackResponse, responses=ERRORS)
    def feedback(body: bodies.feedback, state: Annotated[ServingState, Depends(serving_state)]):
        """Join observed labels to logged predictions by request id."""
        domain = known_domain(state, body.domain)
        # Predictions are written behind the requests: without the flush, a label for one still
        # in the writer's queue would be reported unknown.
        state.writer.flush()
        result = record_feedback(state.engine, domain, [(label.request_id, label.label) for label in body.labels])
        for outcome, count in (("accepted", result.accepted), ("duplicate", len(result.duplicates)),
                               ("unknown", len(result.unknown))):  # fmt: skip
            if count:
                state.metrics.feedback.labels(domain, outcome).inc(count)
        return schemas.FeedbackResponse(accepted=result.accepted, duplicates=result.duplicates, unknown=result.unknown)

    return router
