"""Small data files the training tests write."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def chat_rows(count: int) -> list[dict[str, Any]]:
    return [
        {
            "messages": [
                {"role": "user", "content": f"How many days do I have to return item {i}?"},
                {"role": "assistant", "content": "You have 30 days to return it."},
                {"role": "user", "content": "And the refund?"},
                {"role": "assistant", "content": "Refunds arrive within 5 business days."},
            ]
        }
        for i in range(count)
    ]


def labeled_rows(count: int) -> list[dict[str, Any]]:
    labels = ["positive", "neutral", "negative"]
    words = {"positive": "great lovely", "neutral": "okay average", "negative": "broken awful"}
    return [
        {"text": f"item {i} is {words[labels[i % 3]]}", "label": labels[i % 3]}
        for i in range(count)
    ]


def text_rows(count: int) -> list[dict[str, Any]]:
    return [
        {"text": f"The router model R{i} keeps its settings after a reset. " * (1 + i % 4)}
        for i in range(count)
    ]


def install_distribution(site: Path, package: str, code: str, entry_points: str) -> Path:
    """A minimal installed distribution under ``site``: the module ``package`` holding
    ``code``, and a dist-info whose ``entry_points.txt`` is ``entry_points``. Put ``site``
    on sys.path and ``importlib.metadata`` finds its entry points as a pip-installed one's."""
    (site / package).mkdir(parents=True)
    (site / package / "__init__.py").write_text(code)
    name = package.replace("_", "-")
    info = site / f"{package}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(entry_points)
    return site
