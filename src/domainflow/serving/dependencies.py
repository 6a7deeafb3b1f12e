"""What the routes ask FastAPI for: the server's state, a known domain, its serving table."""

from __future__ import annotations

from fastapi import HTTPException, Request

from domainflow.serving.models import ServingTable
from domainflow.serving.state import ServingState


async def serving_state(request: Request) -> ServingState:
    # async: FastAPI runs a sync dependency in its thread pool, a thread hop on every request for one lookup.
    return request.app.state.serving


def known_domain(state: ServingState, domain: str) -> str:
    """`domain` if the server serves it; a 404 naming the served ones otherwise."""
    domains = state.config.domains.values
    if domain not in domains:
        raise HTTPException(404, f"unknown domain {domain!r}; this server serves {', '.join(domains)}")
    return domain


def serving_table(state: ServingState, domain: str) -> ServingTable:
    """The domain's current table; a 503 to retry while its models are still loading."""
    table = state.table(domain)
    if table is None:
        raise HTTPException(503, f"{domain}: models not loaded yet", headers={"Retry-After": "1"})
    return table
