"""The prediction server: routes each record over its domain's arms, logs every prediction, takes feedback.

    app = create_app(load_config(path), resolve_settings())

Routes are sync functions (FastAPI runs them in its thread pool): the model calls are
CPU work, and the database calls are blocking SQLAlchemy.
"""

# No `from __future__ import annotations`: FastAPI reads the route signatures, whose body
# models are built from the config inside create_app.

import logging
import secrets
import uuid
from collections import Counter
from contextlib import asynccontextmanager
from typing import Annotated

import anyio.to_thread
from fastapi import Depends, FastAPI, HTTPException, Path, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from domainflow.config import PipelineConfig
from domainflow.serving import schemas
from domainflow.serving.models import ServingTable, absent_in_registry
from domainflow.serving.predict import predict_records
from domainflow.serving.state import ServingState, rollout_view
from domainflow.settings import Settings
from domainflow.store.prediction_log import record_feedback
from domainflow.store.rollouts import CHAMPION_ARM, Arm, RolloutConflict, RolloutError, set_rollout

logger = logging.getLogger(__name__)
ADMIN_ACTOR = "admin-api"


def _describe(error: dict, features: list[str]) -> str:
    where = ".".join(str(part) for part in error.get("loc", ()) if part != "body") or "body"
    if error.get("type") == "extra_forbidden" and "features" in error.get("loc", ()):
        return f"{where}: unknown feature {error['loc'][-1]!r}; the features are {', '.join(features)}"
    if error.get("type") == "json_invalid":
        return f"the body is not valid JSON ({error.get('msg')})"
    if error.get("type") == "string_pattern_mismatch" and tuple(error.get("loc", ()))[-1:] == ("version",):
        return (f"{where}: a version is the number of a registered version of the domain's model, e.g. 3; "
                "a URI, a path, an alias or another model is not accepted")  # fmt: skip
    return f"{where}: {error.get('msg')}"


def create_app(config: PipelineConfig, settings: Settings, *, freeze_heap: bool = False) -> FastAPI:
    """`freeze_heap`: once started, exempt the startup heap from the cyclic GC (see ServingState.start).

    It changes the whole process, so the process's owner decides: `domainflow serve` sets it.
    """
    if not config.domains.values:
        raise ValueError(
            "serving needs the domains listed in domains.values (the server does not read the data to find them)"
        )
    state = ServingState(config, settings, freeze_heap=freeze_heap)
    bodies = schemas.request_models(config)
    domains = list(config.domains.values)
    # Documented as the configured values; any other is answered with a 404 naming them.
    DomainPath = Annotated[str, Path(json_schema_extra={"enum": domains})]

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
    bearer = HTTPBearer(auto_error=False, description="The admin token (DOMAINFLOW_ADMIN_TOKEN).")

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        state.metrics.rejected_requests.labels("422").inc()
        # Without the offending input: it may be NaN (not JSON) or a whole large body.
        errors = [{"type": e["type"], "loc": jsonable_encoder(e["loc"]), "msg": e["msg"]} for e in error.errors()]
        message = "; ".join(_describe(e, config.data.features) for e in errors)
        return JSONResponse({"detail": errors, "message": message}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        state.metrics.rejected_requests.labels(str(error.status_code)).inc()
        return JSONResponse({"detail": error.detail}, status_code=error.status_code, headers=error.headers)

    @app.exception_handler(Exception)
    async def server_fault(request: Request, error: Exception) -> JSONResponse:
        # Only real faults get here (bad input is answered above); the traceback stays in the server log.
        state.metrics.server_errors.inc()
        logger.exception("unexpected fault on %s %s", request.method, request.url.path, exc_info=error)
        return JSONResponse({"detail": "internal server error; the server log has the details"}, status_code=500)

    def known(domain: str) -> str:
        if domain not in domains:
            raise HTTPException(404, f"unknown domain {domain!r}; this server serves {', '.join(domains)}")
        return domain

    def serving_table(domain: str) -> ServingTable:
        table = state.table(domain)
        if table is None:
            raise HTTPException(503, f"{domain}: models not loaded yet", headers={"Retry-After": "1"})
        return table

    def admin(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
        token = settings.admin_token
        if not token:
            raise HTTPException(403, "admin routes are disabled: set DOMAINFLOW_ADMIN_TOKEN")
        given = credentials.credentials.encode() if credentials else b""
        if not secrets.compare_digest(given, token.encode()):
            raise HTTPException(401, "admin routes need `Authorization: Bearer <DOMAINFLOW_ADMIN_TOKEN>`",
                                headers={"WWW-Authenticate": "Bearer"})  # fmt: skip

    errors = {404: {"model": schemas.Message}, 409: {"model": schemas.Message}, 503: {"model": schemas.Message}}
    admin_errors = {**errors, 401: {"model": schemas.Message}, 403: {"model": schemas.Message}}

    @app.post(
        "/predict", response_model=schemas.PredictResponse,
        responses={**errors, 500: {"model": schemas.PredictFailure, "description": "The model failed on records."}},
    )  # fmt: skip
    def predict(body: bodies.predict):
        """Score one record or a batch; each record goes to the arm its request id hashes to."""
        domain = known(body.domain)
        items = body.items()
        given = [request_id for request_id, _ in items if request_id is not None]
        repeated = sorted(request_id for request_id, n in Counter(given).items() if n > 1)
        if repeated:
            raise HTTPException(422, f"request_id {', '.join(map(repr, repeated))} appears more than once in the batch")
        table = serving_table(domain)
        ids = [request_id or str(uuid.uuid4()) for request_id, _ in items]
        picks = [table.pick(request_id) for request_id in ids]
        if any(pick is None for pick in picks):
            retry = {"Retry-After": str(max(1, round(config.serving.refresh_seconds)))}
            raise HTTPException(503, f"{domain} cannot serve: {'; '.join(table.problems.values())}", headers=retry)
        taken = state.writer.claim(given)
        if taken:
            raise HTTPException(409, f"request_id {', '.join(map(repr, taken))} is already logged; ids must be unique")
        try:
            outcome = predict_records(
                domain, ids, [features for _, features in items], picks, config, state.metrics, body.event_times()
            )
        except BaseException:
            state.writer.release(given)
            raise
        state.writer.submit(outcome.records)
        if outcome.failed:
            return JSONResponse(jsonable_encoder(outcome.failure(domain)), status_code=500)
        return schemas.PredictResponse(domain=domain, predictions=outcome.predictions)

    @app.post("/feedback", response_model=schemas.FeedbackResponse, responses=errors)
    def feedback(body: bodies.feedback):
        """Join observed labels to logged predictions by request id."""
        domain = known(body.domain)
        # Predictions are written behind the requests: without the flush, a label for one still
        # in the writer's queue would be reported unknown.
        state.writer.flush()
        result = record_feedback(state.engine, domain, [(label.request_id, label.label) for label in body.labels])
        for outcome, count in (("accepted", result.accepted), ("duplicate", len(result.duplicates)),
                               ("unknown", len(result.unknown))):  # fmt: skip
            if count:
                state.metrics.feedback.labels(domain, outcome).inc(count)
        return schemas.FeedbackResponse(accepted=result.accepted, duplicates=result.duplicates, unknown=result.unknown)

    @app.get("/health", response_model=schemas.Message)
    def health():
        """The process is up (readiness is /ready)."""
        return schemas.Message(detail="alive")

    @app.get("/ready", response_model=schemas.Readiness, responses={503: {"model": schemas.Readiness}})
    def ready():
        """200 when every configured domain has its champion loaded; 503 naming what is missing."""
        readiness = state.readiness()
        return JSONResponse(readiness.model_dump(), status_code=200 if readiness.ready else 503)

    @app.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
    def metrics():
        """Prometheus text format."""
        return Response(state.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/rollouts/{domain}", response_model=schemas.RolloutView, responses=errors)
    def show_rollout(domain: DomainPath):
        """The domain's arms, weights and revision, and which versions are loaded."""
        return rollout_view(domain, serving_table(known(domain)))

    def version_exists(name: str, version: str) -> bool:
        try:
            state.refresher.client.get_model_version(name, version)
        except Exception as error:
            if absent_in_registry(error):
                return False
            raise
        return True

    def apply(domain: str, arms: list[Arm], reason: str) -> schemas.RolloutView:
        try:
            set_rollout(state.engine, domain, config.registered_model_name(domain), arms, reason, actor=ADMIN_ACTOR)
        except RolloutError as error:
            raise HTTPException(422, f"invalid rollout: {error}") from None
        except RolloutConflict as error:
            raise HTTPException(409, str(error)) from None
        # Load and swap now, so the answer shows what serves.
        state.refresher.refresh()
        return rollout_view(domain, serving_table(domain))

    @app.put("/admin/rollouts/{domain}", response_model=schemas.RolloutView, responses=admin_errors,
             dependencies=[Depends(admin)])  # fmt: skip
    def put_rollout(domain: DomainPath, body: schemas.RolloutChange):
        """Replace the domain's arms and weights (they must sum to 1); audited as admin-api."""
        name = config.registered_model_name(known(domain))
        missing = sorted({arm.version for arm in body.arms if not version_exists(name, arm.version)}, key=int)
        if missing:
            raise HTTPException(422, f"{name} has no version {', '.join(missing)}: register it first")
        return apply(domain, [Arm(a.variant, a.version, a.weight) for a in body.arms], body.reason)

    @app.post("/admin/rollouts/{domain}/rollback", response_model=schemas.RolloutView, responses=admin_errors,
              dependencies=[Depends(admin)])  # fmt: skip
    def rollback(domain: DomainPath, body: schemas.RollbackRequest):
        """All traffic to the version the `champion` alias names."""
        name = config.registered_model_name(known(domain))
        champion = state.refresher.champion_version(name)
        if champion is None:
            raise HTTPException(409, f"{name} has no champion alias: nothing to roll back to")
        return apply(domain, [Arm(CHAMPION_ARM, champion, 1.0)], body.reason)

    return app
