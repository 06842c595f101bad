"""The error table applied to every HTTP route once, by exception handlers.

Routes raise; these handlers answer. Under ``/v1`` and ``/v3`` the body is OpenAI's envelope
``{"error": {"message", "type", "param", "code"}}`` (invalid parameters are 400, not FastAPI's
422; unknown models 404 ``model_not_found``); elsewhere KServe's ``{"error": message}``.
Anything unexpected is logged with its traceback and answered 500 with an id to find it in the
log, never with the exception's text.
"""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from ovserve.errors import (
    BodyTimeout,
    InvalidInput,
    Overloaded,
    OvserveError,
    ServableNotFound,
    Unauthenticated,
)
from ovserve.transport.errors import ErrorShape, shape_of

log = logging.getLogger(__name__)
OPENAI_PREFIXES = ("/v1/", "/v3/")
#: vLLM's routes at the root that answer in OpenAI's envelope
OPENAI_ROOT_PATHS = frozenset({"/tokenize", "/detokenize", "/rerank", "/score"})


def is_openai(request: Request) -> bool:
    path = request.url.path
    return path.startswith(OPENAI_PREFIXES) or path in OPENAI_ROOT_PATHS


def openai_body(message: str, type_: str, param: str | None = None,
                code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def error_body(exc: OvserveError, shape: ErrorShape) -> dict[str, Any]:
    """OpenAI's error envelope for an ovserve error (also an SSE stream's in-band error)."""
    param = exc.param if isinstance(exc, InvalidInput) else None
    code = None
    if isinstance(exc, ServableNotFound):
        param, code = "model", "model_not_found"
    elif isinstance(exc, Unauthenticated):
        code = "invalid_api_key"  # as OpenAI answers a wrong key
    elif isinstance(exc, Overloaded):
        code = "rate_limit_exceeded"  # as OpenAI answers a 429
    return openai_body(str(exc), shape.openai_type, param, code)


def error_response(request: Request, exc: OvserveError) -> JSONResponse:
    shape = shape_of(exc)
    # what is left of a stalled body would be read as the next request: close the connection
    headers = {"Connection": "close"} if isinstance(exc, BodyTimeout) else None
    if isinstance(exc, Overloaded):  # when to come back (the openai SDK's retry waits so long)
        headers = {"Retry-After": str(exc.retry_after)}
    if not is_openai(request):
        return JSONResponse({"error": str(exc)}, status_code=shape.http_status, headers=headers)
    return JSONResponse(error_body(exc, shape), status_code=shape.http_status, headers=headers)


_TYPE_TAG = re.compile(r"[A-Z]|.*\[|(str|int|float|bool|none|list|dict)$")


def _union_member(part: object) -> bool:
    """Whether a pydantic error location part names a member of a union (``str``,
    ``list[str]``, a model's class name) rather than a field: the field is what to name."""
    return isinstance(part, str) and _TYPE_TAG.match(part) is not None


def _required_fields(request: Request) -> list[str]:
    """The fields the route's body model requires (none known: [])."""
    field = getattr(request.scope.get("route"), "body_field", None)
    model = getattr(getattr(field, "field_info", None), "annotation", None)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return [name for name, info in model.model_fields.items() if info.is_required()]
    return []


def validation_error(exc: RequestValidationError, request: Request | None = None
                     ) -> InvalidInput:
    """FastAPI's first validation problem as an InvalidInput naming the field."""
    error = exc.errors()[0]
    if tuple(error.get("loc", ())) == ("body",) and error.get("type") == "missing":
        required = _required_fields(request) if request is not None else []
        if required:  # no body at all: name what it must have
            return InvalidInput(f"the request body is empty; send a JSON object with "
                                f"{', '.join(required)}", required[0])
        return InvalidInput("the request body is empty; send a JSON object")
    if error.get("type") == "json_invalid":
        detail = (error.get("ctx") or {}).get("error", "")
        return InvalidInput(f"the request body is not valid JSON: {detail}".rstrip(": "))
    if tuple(error.get("loc", ())) == ("body",) and error.get("type") != "missing":
        return InvalidInput("the request body must be a JSON object (with Content-Type: "
                            "application/json)")
    loc = [str(p) for p in error.get("loc", ()) if p != "body" and not _union_member(p)]
    param = ".".join(loc) or None
    message = str(error.get("msg", "invalid request"))
    return InvalidInput(f"{param}: {message}" if param else message, param)


async def _ovserve(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, OvserveError)
    return error_response(request, exc)


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(request, validation_error(exc, request))


async def _gone(request: Request, exc: Exception) -> Response:
    """The client left before its body was read: nobody to answer, nothing went wrong."""
    log.info("%s %r: the client disconnected before sending its whole body", request.method,
             request.url.path)
    return Response(status_code=499)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    ref = uuid.uuid4().hex[:12]
    # %r: a path from a client never writes raw newlines into the log
    log.error("%s %r failed (error id %s)", request.method, request.url.path, ref, exc_info=exc)
    message = f"internal error (error id {ref})"
    if is_openai(request):
        return JSONResponse(openai_body(message, "server_error"), status_code=500)
    return JSONResponse({"error": message}, status_code=500)


async def _http(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (404 route, 405 method) in the path's shape; FastAPI turns a
    failure while reading the body (``BodyTooLarge``) into one, its cause says which."""
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc.__cause__, OvserveError):
        return error_response(request, exc.__cause__)
    if isinstance(exc.__cause__, ClientDisconnect):  # FastAPI reading a body that never came
        return await _gone(request, exc.__cause__)
    message = str(exc.detail)
    if is_openai(request):
        type_ = "invalid_request_error" if exc.status_code < 500 else "server_error"
        return JSONResponse(openai_body(message, type_), status_code=exc.status_code,
                            headers=exc.headers)
    return JSONResponse({"error": message}, status_code=exc.status_code, headers=exc.headers)


def install(app: FastAPI) -> None:
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(OvserveError, _ovserve)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(ClientDisconnect, _gone)
    app.add_exception_handler(Exception, _unexpected)
