"""The HTTP layer: thin FastAPI routes over ``OpenAIHandler``.

The server listens at once and loads the model in the background: ``/health`` answers
while it loads, ``/ready`` and the API answer 503 until the model is in memory.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException

from lmforge.serve.errors import ApiError, error_body
from lmforge.serve.handler import OpenAIHandler
from lmforge.serve.metrics import ServerMetrics
from lmforge.serve.protocol import ChatCompletionRequest, CompletionRequest


class ServerState:
    """The handler once the model is loaded, or why loading failed."""

    def __init__(self, load: Callable[[], OpenAIHandler]) -> None:
        self._load = load
        self.handler: OpenAIHandler | None = None
        self.error: str | None = None
        self.loaded = threading.Event()
        self.metrics = ServerMetrics()

    def start_loading(self) -> None:
        threading.Thread(target=self._run_load, name="lmforge-load", daemon=True).start()

    def _run_load(self) -> None:
        try:
            handler = self._load()
            self.metrics.attach(handler.engine.stats)
            handler.engine.start()
            self.handler = handler
        except Exception as error:  # reported by /ready, every API call and the log
            self.error = f"{type(error).__name__}: {error}"
            print(f"lmforge serve: the model failed to load: {self.error}", file=sys.stderr)
        finally:
            self.loaded.set()

    def stop(self) -> None:
        if self.handler is not None:
            self.handler.engine.stop()

    def require(self) -> OpenAIHandler:
        if self.handler is None:
            message = (
                f"the model failed to load: {self.error}"
                if self.error
                else "the model is still loading; retry when GET /ready returns 200"
            )
            raise ApiError(503, message, code="model_not_ready", headers={"Retry-After": "2"})
        return self.handler


def create_app(load: Callable[[], OpenAIHandler]) -> FastAPI:
    """The server app; ``load`` builds the handler (model, engine) in a background thread."""
    state = ServerState(load)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.start_loading()
        yield
        state.stop()

    app = FastAPI(title="lmforge", summary="OpenAI-compatible lmforge server", lifespan=lifespan)
    app.state.lmforge = state

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> JSONResponse:
        return JSONResponse(error.body(), status_code=error.status, headers=error.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_body(request: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0]
        location = [str(part) for part in first.get("loc", ()) if part != "body"]
        param = ".".join(location) or None
        message = f"{param}: {first.get('msg')}" if param else str(first.get("msg"))
        return JSONResponse(error_body(400, message, param=param), status_code=400)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        return JSONResponse(
            error_body(error.status_code, str(error.detail)), status_code=error.status_code
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        return JSONResponse(error_body(500, f"internal error: {type(error).__name__}"), 500)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready")
    async def ready() -> JSONResponse:
        state.require()
        return JSONResponse({"status": "ready"})

    @app.get("/metrics")
    async def metrics() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(state.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return state.require().models()

    @app.post("/v1/chat/completions")
    async def chat(body: ChatCompletionRequest) -> Any:
        return _respond(await state.require().chat(body))

    @app.post("/v1/completions")
    async def completions(body: CompletionRequest) -> Any:
        return _respond(await state.require().completions(body))

    return app


def _respond(result: dict[str, Any] | AsyncIterator[str]) -> Any:
    if isinstance(result, dict):
        return JSONResponse(result)
    return StreamingResponse(result, media_type="text/event-stream")
