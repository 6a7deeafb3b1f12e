"""GET /health, /ready and /metrics: open to anyone who can reach the server (probes and Prometheus)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response

from domainflow.serving import schemas
from domainflow.serving.dependencies import serving_state
from domainflow.serving.state import ServingState

router = APIRouter()


@router.get("/health", response_model=schemas.Health, responses={503: {"model": schemas.Health}})
def health(state: Annotated[ServingState, Depends(serving_state)]):
    """The process is up (readiness is /ready): 503 when its prediction-log writer has stopped, which a
    restart mends; a writer that is stalled (the database refuses its rows) is reported, with 200."""
    writer = state.writer.health() if state.writer is not None else None
    shown = schemas.LogWriterHealth(**asdict(writer)) if writer is not None else None
    if writer is not None and not writer.alive:
        stopped = "the prediction-log writer has stopped: predictions are not logged"
        return JSONResponse(schemas.Health(detail=stopped, log_writer=shown).model_dump(), status_code=503)
    return schemas.Health(detail="alive", log_writer=shown)


@router.get("/ready", response_model=schemas.Readiness, responses={503: {"model": schemas.Readiness}})
def ready(state: Annotated[ServingState, Depends(serving_state)]):
    """200 when every configured domain has its champion loaded; 503 naming what is missing."""
    readiness = state.readiness()
    return JSONResponse(readiness.model_dump(), status_code=200 if readiness.ready else 503)


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
def metrics(state: Annotated[ServingState, Depends(serving_state)]):
    """Prometheus text format."""
    return Response(state.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
