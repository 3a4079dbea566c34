"""The texts INT8 quantization calibrates on when the user gives none: the bundled support
dialogs (``lmforge serve --quantize int8`` and ``lmforge compress --method int8-dynamic``)."""

from __future__ import annotations

from typing import Any

from lmforge.data.bundled import dataset_path
from lmforge.data.chat import chat_text, has_chat_template
from lmforge.data.records import read_records


def calibration_texts(tokenizer: Any, count: int = 32) -> list[list[int]]:
    """Token ids of the first bundled support dialogs, to calibrate INT8 quantization."""
    records, _ = read_records(dataset_path("customer_service", "train"), format="messages")
    texts = []
    for record in records[:count]:
        if has_chat_template(tokenizer):
            text = chat_text(tokenizer, record["messages"])
        else:
            text = "\n".join(m["content"] for m in record["messages"])
        texts.append(list(tokenizer(text, add_special_tokens=False)["input_ids"]))
    return texts
