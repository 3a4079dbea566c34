"""POST /v1/images/generations: OpenAI's image generation over a served diffusion model.

Generation runs on its own worker thread, one request at a time in arrival order, never
on the engine's thread: a 25-step image takes the engine's decode loop no turn, so chat
answers keep streaming while pictures are drawn (the two share the CPU cores). Requests
beyond ``MAX_WAITING`` waiting get a 429 instead of a long queue. Prompts pass the
guardrails as chat messages do.
"""

from __future__ import annotations

import asyncio
import base64
import io
import random
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from lmforge.errors import LmforgeError
from lmforge.hub.diffusion import SAMPLERS, GenerationSettings, ImageGenerator
from lmforge.serve.api.base import EndpointFamily, OpenAIHandler, Routes
from lmforge.serve.errors import ApiError
from lmforge.serve.protocol import ImageGenerationRequest

MAX_IMAGES = 10  # per request, as OpenAI's dall-e-2
MAX_STEPS = 200
MAX_WAITING = 8  # requests queued behind the one being drawn


class ImageGeneration(EndpointFamily):
    """The diffusion models a server serves (``--image-model``)."""

    needs = "image_generation"

    def __init__(self, served: OpenAIHandler) -> None:
        super().__init__(served)
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lmforge-images")
        self._waiting = 0
        self._lock = threading.Lock()

    @classmethod
    def describe_model(cls, served: OpenAIHandler, name: str, model: Any) -> dict[str, Any]:
        return {"root": model.ref, "parent": None, "image_size": model.image_size}

    def generator(self, name: str | None) -> ImageGenerator:
        """The served image model ``name`` (or the only one)."""
        served = self.served.backends.get(self.needs, {})
        if name is None and len(served) == 1:
            return next(iter(served.values()))
        if name is None:
            raise ApiError(400, f"name the image model; served: {', '.join(served) or 'none'}",
                           param="model")  # fmt: skip
        return self.model(name)

    async def generate(self, body: ImageGenerationRequest) -> dict[str, Any]:
        """``n`` images of ``prompt`` as base64 PNG files."""
        generator = self.generator(body.model)
        settings = self._settings(body, generator)
        prompt = body.prompt.strip()
        if not prompt:
            raise ApiError(400, "prompt must be non-empty text", param="prompt")
        if self.served.guard is not None:
            await self.served.screen_text(prompt, "prompt")
        try:
            generator.condition_of(prompt)
        except LmforgeError as error:
            raise ApiError(400, str(error), param="prompt") from None
        with self._lock:
            if self._waiting >= MAX_WAITING + 1:
                raise ApiError(429, f"{MAX_WAITING} image requests are already waiting; retry "
                               "shortly", code="queue_full")  # fmt: skip
            self._waiting += 1
        try:
            loop = asyncio.get_running_loop()
            images = await loop.run_in_executor(
                self._worker, generator.generate, [prompt] * body.n, settings
            )
        finally:
            with self._lock:
                self._waiting -= 1
        data = []
        for image in images:
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
            data.append({"b64_json": base64.b64encode(buffer.getvalue()).decode("ascii"),
                         "revised_prompt": prompt})  # fmt: skip
        return {"created": int(time.time()), "data": data,
                "seed": settings.seed}  # fmt: skip

    def _settings(self, body: ImageGenerationRequest, generator: ImageGenerator) -> Any:
        """The request's knobs, each checked (a 400 naming the one at fault)."""
        side = generator.image_size
        checks = [
            ("n", 1 <= body.n <= MAX_IMAGES, f"n: {body.n}; give 1 to {MAX_IMAGES}"),
            ("response_format", body.response_format == "b64_json",
             f"response_format: {body.response_format!r}; this server answers b64_json only "
             "(it keeps no image files to point a url at)"),
            ("size", body.size is None or _side(body.size) == side,
             f"size: {body.size!r}; this model draws {side}x{side} images: send "
             f"'{side}x{side}' or leave size out"),
            ("steps", 1 <= body.steps <= MAX_STEPS, f"steps: {body.steps}; give 1 to {MAX_STEPS}"),
            ("guidance", 0 <= body.guidance <= 50, f"guidance: {body.guidance}; give 0 to 50"),
            ("sampler", body.sampler in SAMPLERS,
             f"sampler: {body.sampler!r}; use one of {', '.join(SAMPLERS)}"),
        ]  # fmt: skip
        for param, ok, message in checks:
            if not ok:
                raise ApiError(400, message, param=param)
        seed = body.seed if body.seed is not None else random.randrange(2**31)
        return GenerationSettings(steps=body.steps, guidance=body.guidance, seed=seed,
                                  sampler=body.sampler)  # fmt: skip

    @classmethod
    def add_routes(cls, routes: Routes) -> None:
        @routes.app.post("/v1/images/generations")
        async def images_generations(
            body: ImageGenerationRequest, owner: str | None = routes.authorized
        ) -> Any:
            return await routes.family(cls).generate(body)


def _side(size: str) -> int | None:
    """The side of a square ``"WxH"`` size, or None for anything else."""
    match = re.fullmatch(r"\s*(\d+)\s*x\s*(\d+)\s*", size)
    if match is None or match.group(1) != match.group(2):
        return None
    return int(match.group(1))
