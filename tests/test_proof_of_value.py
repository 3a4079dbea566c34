"""``examples/proof_of_value.py`` rewrites only the section it measured."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "examples" / "proof_of_value.py"


def load_script() -> object:
    spec = importlib.util.spec_from_file_location("proof_of_value", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RESULTS = """# Proof of value, measured

## 1. LoRA adaptation

old lora table

## 2. Pretrained vs from scratch

old sentiment table

## What these numbers say

- notes
"""


def test_a_measured_part_replaces_its_own_section_and_keeps_the_rest() -> None:
    with_section = load_script().with_section  # type: ignore[attr-defined]
    text = with_section(RESULTS, "## 2. Pretrained vs from scratch\n\nnew sentiment table\n")
    assert "new sentiment table" in text and "old sentiment table" not in text
    assert "old lora table" in text and text.endswith("- notes")
    assert text.index("## 2.") < text.index("## What these numbers say")


def test_a_section_the_file_lacks_goes_before_the_notes() -> None:
    with_section = load_script().with_section  # type: ignore[attr-defined]
    lora_only = RESULTS.replace("## 2. Pretrained vs from scratch\n\nold sentiment table\n\n", "")
    text = with_section(lora_only, "## 2. Pretrained vs from scratch\n\nnew sentiment table\n")
    assert text.index("old lora table") < text.index("new sentiment table")
    assert text.index("new sentiment table") < text.index("## What these numbers say")
