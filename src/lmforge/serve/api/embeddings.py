"""POST /v1/embeddings: vectors from the served encoder (``--embed REF``, or an encoder
served on its own)."""

from __future__ import annotations

import base64
from typing import Any

from lmforge.serve.api.base import EndpointFamily, OpenAIHandler, Routes
from lmforge.serve.errors import ApiError
from lmforge.serve.protocol import EmbeddingRequest


class Embeddings(EndpointFamily):
    """Embeddings of texts or token ids, as floats or base64."""

    needs = "embeddings"

    @classmethod
    def describe_model(cls, served: OpenAIHandler, name: str, model: Any) -> dict[str, Any]:
        return {"root": name, "parent": None, "dimensions": model.dimension}

    async def create(self, body: EmbeddingRequest) -> dict[str, Any]:
        embedder = self.model(body.model)
        if body.dimensions is not None and body.dimensions != embedder.dimension:
            raise ApiError(
                400,
                f"dimensions {body.dimensions} is not available; this model gives "
                f"{embedder.dimension}",
                param="dimensions",
            )
        texts = body.texts(embedder.tokenizer)
        if not texts or any(not text for text in texts):
            raise ApiError(400, "input must be non-empty text", param="input")
        lengths = [len(ids) for ids in embedder.tokenizer(texts)["input_ids"]]
        limit = embedder.max_length
        longest = max(range(len(texts)), key=lambda i: lengths[i])
        if lengths[longest] > limit and not body.truncate:
            raise ApiError(400, f"input[{longest}] has {lengths[longest]} tokens; this model's "
                           f"maximum context length is {limit} tokens. Shorten the input, or "
                           'send "truncate": true to embed its first tokens only.',
                           param="input", code="context_length_exceeded")  # fmt: skip
        vectors = await self.served.compute(embedder.encode, texts)  # (N, D)
        tokens = sum(min(length, limit) for length in lengths)  # what was embedded
        return {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": encode_vector(v, body)}
                for i, v in enumerate(vectors)
            ],
            "model": body.model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    def not_served(self, name: str) -> ApiError:
        """A 404 that names the served encoder, or how to serve one."""
        served = self.served.embed_name
        if self.served.embedder is None:
            served = "none (start the server with --embed REF or an encoder)"
        return ApiError(404, f"The embedding model '{name}' does not exist; served: "
                        f"{served}", param="model", code="model_not_found")  # fmt: skip

    @classmethod
    def add_routes(cls, routes: Routes) -> None:
        @routes.app.post("/v1/embeddings")
        async def embeddings(body: EmbeddingRequest, owner: str | None = routes.authorized) -> Any:
            return await routes.family(cls).create(body)


def encode_vector(vector: Any, body: EmbeddingRequest) -> Any:
    """One embedding as the request's ``encoding_format`` asks: floats, or base64 of
    little-endian float32."""
    if body.encoding_format == "base64":
        return base64.b64encode(vector.astype("<f4").tobytes()).decode()
    return [float(x) for x in vector]
