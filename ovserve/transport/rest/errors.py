"""The error table applied to every HTTP route once, by exception handlers.

Routes raise; these handlers answer. Under ``/v1`` and ``/v3`` the body is OpenAI's envelope
``{"error": {"message", "type", "param", "code"}}`` (invalid parameters are 400, not FastAPI's
422; unknown models 404 ``model_not_found``); elsewhere KServe's ``{"error": message}``.
Anything unexpected is logged with its traceback and answered 500 with an id to find it in the
log, never with the exception's text.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from ovserve.errors import InvalidInput, OvserveError, ServableNotFound
from ovserve.transport.errors import shape_of

log = logging.getLogger(__name__)
OPENAI_PREFIXES = ("/v1/", "/v3/")


def is_openai(request: Request) -> bool:
    return request.url.path.startswith(OPENAI_PREFIXES)


def openai_body(message: str, type_: str, param: str | None = None,
                code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def error_response(request: Request, exc: OvserveError) -> JSONResponse:
    shape = shape_of(exc)
    if not is_openai(request):
        return JSONResponse({"error": str(exc)}, status_code=shape.http_status)
    param = exc.param if isinstance(exc, InvalidInput) else None
    code = None
    if isinstance(exc, ServableNotFound):
        param, code = "model", "model_not_found"
    return JSONResponse(openai_body(str(exc), shape.openai_type, param, code),
                        status_code=shape.http_status)


def validation_error(exc: RequestValidationError) -> InvalidInput:
    """FastAPI's first validation problem as an InvalidInput naming the field."""
    error = exc.errors()[0]
    loc = [str(p) for p in error.get("loc", ()) if p != "body"]
    param = ".".join(loc) or None
    message = str(error.get("msg", "invalid request"))
    return InvalidInput(f"{param}: {message}" if param else message, param)


async def _ovserve(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, OvserveError)
    return error_response(request, exc)


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(request, validation_error(exc))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    ref = uuid.uuid4().hex[:12]
    log.error("%s %s failed (error id %s)", request.method, request.url.path, ref, exc_info=exc)
    message = f"internal error (error id {ref})"
    if is_openai(request):
        return JSONResponse(openai_body(message, "server_error"), status_code=500)
    return JSONResponse({"error": message}, status_code=500)


def install(app: FastAPI) -> None:
    app.add_exception_handler(OvserveError, _ovserve)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(Exception, _unexpected)
