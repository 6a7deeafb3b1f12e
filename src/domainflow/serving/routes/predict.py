"""POST /predict: score records over the domain's rollout and log every prediction."""

# No `from __future__ import annotations`: FastAPI reads the route's body type, built from the config.

import uuid
from collections import Counter
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from domainflow.serving import schemas
from domainflow.serving.auth import PREDICT, Caller, admit, require
from domainflow.serving.dependencies import known_domain, serving_state, serving_table
from domainflow.serving.predict import predict_records
from domainflow.serving.state import ServingState

ERRORS = {status: {"model": schemas.Message} for status in (401, 403, 404, 409, 429, 503)}


def build_router(bodies: schemas.RequestModels) -> APIRouter:
    router = APIRouter()

    @router.post(
        "/predict", response_model=schemas.PredictResponse,
        responses={**ERRORS, 500: {"model": schemas.PredictFailure, "description": "The model failed on records."}},
    )  # fmt: skip
    def predict(
        body: bodies.predict, state: Annotated[ServingState, Depends(serving_state)],
        caller: Annotated[Caller, Depends(require(PREDICT))],
    ):  # fmt: skip
        """Score one record or a batch; each record goes to the arm its request id hashes to.

        Needs a `predictor` (or `admin`) key for the domain; each record counts against the key's records
        per minute. The key's id is logged with every prediction.
        """
        items = body.items()
        admit(state, caller, body.domain, len(items))
        domain = known_domain(state, body.domain)
        given = [request_id for request_id, _ in items if request_id is not None]
        repeated = sorted(request_id for request_id, n in Counter(given).items() if n > 1)
        if repeated:
            raise HTTPException(422, f"request_id {', '.join(map(repr, repeated))} appears more than once in the batch")
        table = serving_table(state, domain)
        ids = [request_id or str(uuid.uuid4()) for request_id, _ in items]
        picks = [table.pick(request_id) for request_id in ids]
        if any(pick is None for pick in picks):
            retry = {"Retry-After": str(max(1, round(state.config.serving.refresh_seconds)))}
            raise HTTPException(503, f"{domain} cannot serve: {'; '.join(table.problems.values())}", headers=retry)
        taken = state.writer.claim(given)
        if taken:
            raise HTTPException(409, f"request_id {', '.join(map(repr, taken))} is already logged; ids must be unique")
        try:
            outcome = predict_records(domain, ids, [features for _, features in items], picks, state.config,
                                      state.metrics, body.event_times(),
                                      key_id=caller.provenance)  # fmt: skip
        except BaseException:
            state.writer.release(given)
            raise
        state.writer.submit(outcome.records)
        if outcome.failed:
            return JSONResponse(jsonable_encoder(outcome.failure(domain)), status_code=500)
        return schemas.PredictResponse(domain=domain, predictions=outcome.predictions)

    return router
