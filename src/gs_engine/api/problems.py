"""Every error the API returns is an RFC 9457 problem document (application/problem+json)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from gs_engine.errors import GseError, InvalidInput, Problem

log = logging.getLogger("gs_engine.api")
PROBLEM_JSON = "application/problem+json"


def problem_response(error: GseError) -> JSONResponse:
    headers = {}
    if error.retry_after is not None:
        headers["Retry-After"] = str(max(1, round(error.retry_after)))
    if error.http_status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="gs-engine"'
    return JSONResponse(
        error.as_problem(), status_code=error.http_status, media_type=PROBLEM_JSON, headers=headers
    )


def _plain_problem(status: int, title: str, detail: str) -> JSONResponse:
    return JSONResponse(
        {"type": "about:blank", "title": title, "status": status, "detail": detail},
        status_code=status,
        media_type=PROBLEM_JSON,
    )


def _problem_of(err: Any) -> Problem:
    """One request-validation error as field, message and fix ("body.replicas" -> "replicas")."""
    location = [str(p) for p in err.get("loc", ())]
    where = location[0] if location else ""
    field = ".".join(location[1:] if where in ("body", "query", "path") and len(location) > 1 else location)
    kind = str(err.get("type", ""))
    if kind == "missing":
        fix = f"add {field}" + (" to the JSON body" if where == "body" else f" to the {where}")
    elif kind in ("dict_type", "model_attributes_type", "json_invalid"):
        fix = "send a JSON object with Content-Type: application/json"
    elif kind == "extra_forbidden":
        fix = f"remove {field}"
    else:
        fix = "see the OpenAPI document at /openapi.json for this route"
    return Problem(field, str(err.get("msg", "invalid")), fix)


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(GseError)
    async def gse_error(_: Request, exc: GseError) -> JSONResponse:
        return problem_response(exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [_problem_of(err) for err in exc.errors()]
        error = InvalidInput("the request is not valid", problems=problems)
        error.http_status = 422
        error.title = "Invalid request"
        return problem_response(error)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else "request failed"
        return _plain_problem(exc.status_code, detail, detail)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error in API request")
        return _plain_problem(500, "Internal error", "the engine failed to handle this request; see its log")
