"""One error shape for every API failure: ``{"error": {"message", "type", "param", "code"}}``,
and the one place where library and framework errors become API errors (``api_error``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from lmforge.errors import LmforgeError
from lmforge.serve.requests import QueueFull

# HTTP status -> OpenAI error type
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    499: "client_closed_request",  # nginx's code: the client left before the answer
    500: "server_error",
    503: "service_unavailable",
}


class ApiError(Exception):
    """An error the API returns to its client as JSON, with an HTTP status."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return error_body(self.status, self.message, param=self.param, code=self.code)


def error_body(
    status: int, message: str, *, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """The JSON body of an error response."""
    return {
        "error": {
            "message": message,
            "type": ERROR_TYPES.get(
                status, "server_error" if status >= 500 else "invalid_request_error"
            ),
            "param": param,
            "code": code,
        }
    }


def api_error(
    error: Exception,
    status: int | None = None,
    *,
    param: str | None = None,
    code: str | None = None,
) -> ApiError:
    """The API error that ``error`` becomes.

    Args:
        error: what was raised.
        status: what a ``LmforgeError`` means where the caller caught it (400: the
            request asked for something it cannot have, 404: it names something that
            does not exist), with the request field it blames (``param``) and ``code``.
            Without a status a ``LmforgeError`` is unexpected, like any other error: a
            500 that names only its type (its message may name server paths).
    """
    if isinstance(error, ApiError):
        return error
    if isinstance(error, QueueFull):  # a LmforgeError, but always the server's load
        return ApiError(503, f"{error}; retry shortly.", code="queue_full",
                        headers={"Retry-After": "1"})  # fmt: skip
    if isinstance(error, LmforgeError) and status is not None:
        return ApiError(status, str(error), param=param, code=code)
    if isinstance(error, RequestValidationError):  # the body does not match its schema
        first = error.errors()[0]
        location = [str(part) for part in first.get("loc", ()) if part != "body"]
        field = ".".join(location) or None
        message = f"{field}: {first.get('msg')}" if field else str(first.get("msg"))
        return ApiError(400, message, param=field)
    if isinstance(error, HTTPException):  # Starlette's own: no such route, wrong method
        return ApiError(error.status_code, str(error.detail))
    return ApiError(500, f"internal error: {type(error).__name__}")


@contextmanager
def lmforge_errors_as(
    status: int, *, param: str | None = None, code: str | None = None
) -> Iterator[None]:
    """Raise a ``LmforgeError`` of the block as the API error ``api_error`` makes of it
    with ``status``, ``param`` and ``code``."""
    try:
        yield
    except LmforgeError as error:
        raise api_error(error, status, param=param, code=code) from error
