"""GET /health, /ready and /metrics: open to anyone who can reach the server (probes and Prometheus)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response

from domainflow.serving import schemas
from domainflow.serving.dependencies import serving_state
from domainflow.serving.state import ServingState

router = APIRouter()


@router.get("/health", response_model=schemas.Message)
def health():
    """The process is up (readiness is /ready)."""
    return schemas.Message(detail="alive")


@router.get("/ready", response_model=schemas.Readiness, responses={503: {"model": schemas.Readiness}})
def ready(state: Annotated[ServingState, Depends(serving_state)]):
    """200 when every configured domain has its champion loaded; 503 naming what is missing."""
    readiness = state.readiness()
    return JSONResponse(readiness.model_dump(), status_code=200 if readiness.ready else 503)


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
def metrics(state: Annotated[ServingState, Depends(serving_state)]):
    """Prometheus text format."""
    return Response(state.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
