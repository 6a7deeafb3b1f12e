"""How the server answers what went wrong: a JSON body that names the problem, and a metric per answer."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from domainflow.redaction import error_line
from domainflow.serving.state import ServingState

logger = logging.getLogger(__name__)

# What a request that needed the database is told while the database is unreachable.
DATABASE_RETRY_SECONDS = 5


def describe(error: dict, features: list[str]) -> str:
    where = ".".join(str(part) for part in error.get("loc", ()) if part != "body") or "body"
    if error.get("type") == "extra_forbidden" and "features" in error.get("loc", ()):
        return f"{where}: unknown feature {error['loc'][-1]!r}; the features are {', '.join(features)}"
    if error.get("type") == "json_invalid":
        return f"the body is not valid JSON ({error.get('msg')})"
    if error.get("type") == "string_pattern_mismatch" and tuple(error.get("loc", ()))[-1:] == ("version",):
        return (f"{where}: a version is the number of a registered version of the domain's model, e.g. 3; "
                "a URI, a path, an alias or another model is not accepted")  # fmt: skip
    return f"{where}: {error.get('msg')}"


def install_error_handlers(app: FastAPI, state: ServingState) -> None:
    features = state.config.data.features

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        state.metrics.rejected_requests.labels("422").inc()
        # Without the offending input: it may be NaN (not JSON) or a whole large body.
        errors = [{"type": e["type"], "loc": jsonable_encoder(e["loc"]), "msg": e["msg"]} for e in error.errors()]
        message = "; ".join(describe(e, features) for e in errors)
        return JSONResponse({"detail": errors, "message": message}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        state.metrics.rejected_requests.labels(str(error.status_code)).inc()
        return JSONResponse({"detail": error.detail}, status_code=error.status_code, headers=error.headers)

    async def database_unreachable(request: Request, error: Exception) -> JSONResponse:
        # A database that is down, hung or out of pooled connections is a 503 the client may retry, not a fault:
        # answered here rather than by `server_fault` below, whose exceptions Starlette re-raises, so uvicorn
        # closed the keep-alive connection after every such answer (the kill test saw clients' next requests
        # reset) and logged a traceback per request.
        state.metrics.rejected_requests.labels("503").inc()
        logger.warning("%s %s: the database is unreachable (%s)", request.method, request.url.path,
                       error_line(error))  # fmt: skip
        return JSONResponse({"detail": "the database is unreachable; retry later"}, status_code=503,
                            headers={"Retry-After": str(DATABASE_RETRY_SECONDS)})  # fmt: skip

    app.add_exception_handler(OperationalError, database_unreachable)
    app.add_exception_handler(PoolTimeoutError, database_unreachable)

    @app.exception_handler(Exception)
    async def server_fault(request: Request, error: Exception) -> JSONResponse:
        # Only real faults get here (bad input is answered above); the traceback stays in the server log.
        state.metrics.server_errors.inc()
        logger.exception("unexpected fault on %s %s", request.method, request.url.path, exc_info=error)
        return JSONResponse({"detail": "internal server error; the server log has the details"}, status_code=500)
