"""Build what the server serves from a model reference."""

from __future__ import annotations

from lmforge.serve.engine import Engine
from lmforge.serve.handler import OpenAIHandler


def build_handler(
    ref: str,
    served_name: str,
    *,
    max_batch: int = 16,
    max_queue: int = 256,
    max_model_len: int | None = None,
    max_tokens_limit: int = 4096,
) -> OpenAIHandler:
    """Resolve and load ``ref``, start nothing yet, and wrap it in the OpenAI handler.

    Raises:
        LmforgeError: the reference does not resolve to a servable causal LM.
    """
    from lmforge.hub import load_causal_lm, resolve

    model, tokenizer = load_causal_lm(resolve(ref, progress=False))
    engine = Engine(
        model, tokenizer, max_batch=max_batch, max_queue=max_queue, max_len=max_model_len
    )
    return OpenAIHandler(engine, served_name, max_tokens_limit=max_tokens_limit)
