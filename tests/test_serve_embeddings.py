"""/v1/embeddings: an encoder served alone, or beside a chat model with --embed."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import openai

from lmforge.hub.embed import SentenceEmbedder
from tests.servers import lmforge_server


def test_an_encoder_server_embeds_like_the_library(tiny_encoder: Path) -> None:
    texts = ["The thermostat shipped today.", "Where is my smart plug?"]
    expected = SentenceEmbedder(str(tiny_encoder)).encode(texts)
    with lmforge_server(str(tiny_encoder), "--served-name", "enc") as base:
        client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0)
        response = client.embeddings.create(model="enc", input=texts)
        vectors = np.array([d.embedding for d in response.data])
        np.testing.assert_allclose(vectors, expected, atol=1e-5)
        assert response.usage.prompt_tokens > 0
        raw = client.embeddings.with_raw_response.create(
            model="enc", input=texts[0], encoding_format="base64"
        ).http_response.json()
        decoded = np.frombuffer(base64.b64decode(raw["data"][0]["embedding"]), dtype="<f4")
        np.testing.assert_allclose(decoded, expected[0], atol=1e-5)
        library = SentenceEmbedder(str(tiny_encoder))
        too_long = "thermostat " * library.max_length  # far more tokens than the context
        try:
            client.embeddings.create(model="enc", input=["short", too_long])
        except openai.BadRequestError as error:
            assert error.code == "context_length_exceeded" and error.param == "input"
            assert "input[1] has" in str(error) and str(library.max_length) in str(error)
        else:
            raise AssertionError("an input over the context must be refused, not cut")
        cut = client.embeddings.create(model="enc", input=too_long, extra_body={"truncate": True})
        assert cut.usage.prompt_tokens == library.max_length  # the tokens actually embedded
        np.testing.assert_allclose(cut.data[0].embedding, library.encode([too_long])[0],
                                   atol=1e-5)  # fmt: skip
        try:
            client.chat.completions.create(model="enc", messages=[{"role": "user", "content": "x"}])
        except openai.NotFoundError as error:
            assert "serves only the embedding model" in str(error)
        else:
            raise AssertionError("an encoder server must refuse chat")


def test_embed_beside_a_chat_model(tiny_causal_lm: Path, tiny_encoder: Path) -> None:
    with lmforge_server(
        str(tiny_causal_lm), "--served-name", "tiny", "--embed", str(tiny_encoder)
    ) as base:
        client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0)
        assert [m.id for m in client.models.list().data] == ["tiny", str(tiny_encoder)]
        response = client.embeddings.create(model=str(tiny_encoder), input=["hello"])
        assert len(response.data[0].embedding) == 64
        chat = client.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": "hi"}], max_tokens=2
        )
        assert chat.usage.completion_tokens == 2
