"""A multi-turn conversation held in memory, rendered with the model's chat template."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lmforge.data.chat import Message, render_chat
from lmforge.home import atomic_write_text
from lmforge.serve.generate import SamplingParams, TextGeneration


@dataclass
class ChatSession:
    """The history of one conversation; ``ask`` streams the next answer and records it."""

    model: Any
    tokenizer: Any
    model_ref: str = ""
    system: str | None = None
    turns: list[Message] = field(default_factory=list)

    def messages(self) -> list[Message]:
        system = [{"role": "system", "content": self.system}] if self.system else []
        return system + self.turns

    def ask(self, text: str, params: SamplingParams) -> TextGeneration:
        """Stream the answer to ``text``; the turn is kept once the stream is consumed."""
        prompt = render_chat(
            self.tokenizer,
            [*self.messages(), {"role": "user", "content": text}],
            model_ref=self.model_ref,
        )
        return _RecordingGeneration(self, text, prompt, params)

    def reset(self) -> None:
        self.turns.clear()

    def save(self, path: Path) -> None:
        """Write the conversation as JSON (``{"model", "messages"}``)."""
        payload = {"model": self.model_ref, "messages": self.messages()}
        atomic_write_text(Path(path), json.dumps(payload, indent=2, ensure_ascii=False) + "\n")


class _RecordingGeneration(TextGeneration):
    def __init__(
        self, session: ChatSession, question: str, prompt: list[int], params: SamplingParams
    ) -> None:
        super().__init__(session.model, session.tokenizer, prompt, params)
        self.session = session
        self.question = question

    def __iter__(self) -> Iterator[str]:
        yield from super().__iter__()
        assert self.completion is not None
        self.session.turns.append({"role": "user", "content": self.question})
        self.session.turns.append({"role": "assistant", "content": self.completion.text})
