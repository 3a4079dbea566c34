"""POST /v1/images/search and image input to /v1/classify (lmforge extensions): the
pictures of a served image index nearest to a sentence or to another picture, and
zero-shot classification with the index's text-image model."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from PIL import Image

from lmforge.data.images import ImageError, decode_image
from lmforge.hub.clip import DEFAULT_LABEL_TEMPLATES, zero_shot
from lmforge.retrieve.images import ImageIndex, clip_for
from lmforge.serve.api.base import EndpointFamily, OpenAIHandler, Routes
from lmforge.serve.errors import ApiError
from lmforge.serve.protocol import ClassifyRequest, ImageInput, ImageSearchRequest

MAX_IMAGE_BYTES = 8_000_000  # a decoded upload; the server's --max-body-bytes caps the body


def decode_upload(data: str, param: str) -> Image.Image:
    """A picture from base64 or a ``data:image/...;base64,`` URL, or a 400 naming ``param``."""
    payload = data.split(",", 1)[1] if data.startswith("data:") and "," in data else data
    try:
        raw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, f"{param}: not base64 (send the image file's bytes in base64, or "
                       "a data:image/png;base64,... URL)", param=param) from None  # fmt: skip
    if len(raw) > MAX_IMAGE_BYTES:
        raise ApiError(400, f"{param}: the image is {len(raw):,} bytes; the limit is "
                       f"{MAX_IMAGE_BYTES:,}", param=param)  # fmt: skip
    try:
        return decode_image(raw, name=param)
    except ImageError as error:
        raise ApiError(400, str(error), param=param) from None


class ImageSearch(EndpointFamily):
    """The image indexes a server serves (``--images``) and their text-image models."""

    needs = "images"

    @classmethod
    def describe_model(cls, served: OpenAIHandler, name: str, model: Any) -> dict[str, Any]:
        return {"root": model.model_ref, "parent": None, "images": len(model.items)}

    def index(self, name: str | None) -> ImageIndex:
        """The served index ``name`` (or the only one), or a 400 naming the served ones."""
        served = self.served.backends.get("images", {})
        if name is None and len(served) == 1:
            return next(iter(served.values()))
        if name is not None and name in served:
            return served[name]
        listed = ", ".join(served) or "none (start the server with --images NAME)"
        what = f"no image index '{name}' is served" if name else "name the index"
        raise ApiError(400, f"{what}; served: {listed}", param="index", code="index_not_found")

    async def search(self, body: ImageSearchRequest) -> dict[str, Any]:
        """The ``k`` images nearest to ``query`` or ``image``, best first."""
        index = self.index(body.index)
        if (body.query is None) == (body.image is None):
            raise ApiError(400, "give query (a sentence) or image (base64), not both or neither",
                           param="query")  # fmt: skip
        if body.query is not None:
            if not body.query.strip():
                raise ApiError(400, "query must be non-empty text", param="query")
            hits = await self.served.compute(index.search_text, body.query, body.k)
        else:
            assert body.image is not None
            picture = decode_upload(body.image, "image")
            hits = await self.served.compute(index.search_image, picture, body.k)
        data = await self.served.compute(
            lambda: [hit.to_dict(thumbnail=body.thumbnails) for hit in hits])  # fmt: skip
        return {"object": "list", "index": index.name, "model": index.model_ref, "data": data}

    async def classify(self, body: ClassifyRequest) -> dict[str, Any]:
        """Zero-shot label probabilities of each image, most likely first."""
        index = self.model(body.model)
        inputs = body.input if isinstance(body.input, list) else [body.input]
        if not inputs or not all(isinstance(item, ImageInput) for item in inputs):
            raise ApiError(400, f"model '{body.model}' is a text-image model: input must be "
                           "images, [{\"image\": BASE64}]", param="input")  # fmt: skip
        labels = [label.strip() for label in body.labels or [] if label.strip()]
        if len(labels) < 2:
            raise ApiError(400, "labels: give at least two labels to choose among",
                           param="labels")  # fmt: skip
        templates = body.templates or list(DEFAULT_LABEL_TEMPLATES)
        if any("{label}" not in template for template in templates):
            raise ApiError(400, "templates: each needs {label} where the label goes",
                           param="templates")  # fmt: skip
        pictures = [decode_upload(item.image, f"input[{number}].image")
                    for number, item in enumerate(inputs)
                    if isinstance(item, ImageInput)]  # fmt: skip
        model, processor = clip_for(index.model_ref)
        rows = await self.served.compute(zero_shot, model, processor, pictures, labels, templates)
        data = []
        for number, row in enumerate(rows.tolist()):
            ranked = dict(sorted(zip(labels, row, strict=True), key=lambda pair: -pair[1]))
            data.append({"object": "classification", "index": number,
                         "label": next(iter(ranked)), "probabilities": ranked})  # fmt: skip
        return {"object": "list", "model": body.model, "data": data}

    @classmethod
    def add_routes(cls, routes: Routes) -> None:
        @routes.app.post("/v1/images/search")
        async def images_search(
            body: ImageSearchRequest, owner: str | None = routes.authorized
        ) -> Any:
            return await routes.family(cls).search(body)
