"""Small models the tests build on the fly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM


def random_lora(path: Path) -> Any:
    """The causal LM at ``path`` with a LoRA adapter whose weights are random (not zero),
    so a policy and its reference (the adapter switched off) differ from the first step."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(path)
    config = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, init_lora_weights=False,
                        target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")  # fmt: skip
    return get_peft_model(base, config).eval()
