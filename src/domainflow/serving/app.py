"""The prediction server: routes each record over its domain's arms, logs every prediction, takes feedback.

    app = create_app(load_config(path), resolve_settings())

Built from routers (routes/): predict, feedback, rollouts with the admin's changes, and
health/readiness/metrics; `auth.require(role)` guards what needs a credential. Routes are
sync functions (FastAPI runs them in its thread pool): the model calls are CPU work, and
the database calls are blocking SQLAlchemy.
"""

from __future__ import annotations

from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI

from domainflow.config import PipelineConfig
from domainflow.serving import schemas
from domainflow.serving.body_limit import BodyLimit
from domainflow.serving.errors import install_error_handlers
from domainflow.serving.routes import feedback, health, predict, rollouts
from domainflow.serving.state import ServingState
from domainflow.settings import Settings


def create_app(config: PipelineConfig, settings: Settings, *, freeze_heap: bool = False) -> FastAPI:
    """`freeze_heap`: once started, exempt the startup heap from the cyclic GC (see ServingState.start).

    It changes the whole process, so the process's owner decides: `domainflow serve` sets it.
    """
    if not config.domains.values:
        raise ValueError(
            "serving needs the domains listed in domains.values (the server does not read the data to find them)"
        )
    state = ServingState(config, settings, freeze_heap=freeze_heap)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # The first refresh downloads and loads models: off the event loop.
        await anyio.to_thread.run_sync(state.start)
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(state.stop)

    app = FastAPI(
        title="domainflow prediction server",
        description="Delay probabilities per domain, routed over the domain's rollout; prediction log and feedback.",
        lifespan=lifespan,
    )
    app.state.serving = state
    app.add_middleware(BodyLimit, max_bytes=config.serving.max_body_bytes,
                       on_refused=state.metrics.rejected_requests.labels("413").inc)  # fmt: skip
    install_error_handlers(app, state)
    bodies = schemas.request_models(config)
    app.include_router(predict.build_router(bodies))
    app.include_router(feedback.build_router(bodies))
    app.include_router(health.router)
    app.include_router(rollouts.build_router(list(config.domains.values)))
    return app
