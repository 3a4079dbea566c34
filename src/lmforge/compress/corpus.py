"""Plain texts from any data file lmforge reads, for the methods that need a corpus."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lmforge.data.chat import chat_text, has_chat_template
from lmforge.data.records import read_records


def corpus_texts(path: Path, tokenizer: Any) -> list[str]:
    """One text per record of ``path`` (messages, alpaca, text or labeled format).

    Dialogs are rendered with ``tokenizer``'s chat template when it has one (so the
    template's own tokens count as used); otherwise their contents are joined by lines.

    Raises:
        DataError: the file is missing, unreadable or in no known format.
    """
    records, _ = read_records(Path(path), source_name="data")
    texts = []
    for record in records:
        if "messages" in record:
            if tokenizer is not None and has_chat_template(tokenizer):
                texts.append(chat_text(tokenizer, record["messages"]))
            else:
                texts.append("\n".join(m["content"] for m in record["messages"]))
        elif "instruction" in record:
            parts = (record.get("instruction"), record.get("input"), record.get("output"))
            texts.append("\n".join(p for p in parts if p))
        else:
            texts.append(str(record["text"]))
    return texts
