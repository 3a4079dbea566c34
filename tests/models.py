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


# A ChatML template that renders tools itself, the way Qwen2.5's and Hermes' do (written
# for these tests, not copied): the tools under a "# Tools" header of its own, calls as
# <tool_call> JSON after the assistant's text, results as <tool_response> user turns.
NATIVE_TOOLS_TEMPLATE = (
    "{%- if tools %}{{ '<|im_start|>system\n' }}"
    "{%- if messages[0].role == 'system' %}{{ messages[0].content + '\n\n' }}{% endif %}"
    "{{ '# Tools\n\nFunction signatures, one per line, are within <tools></tools>:\n<tools>' }}"
    "{%- for tool in tools %}{{ '\n' + (tool | tojson) }}{% endfor %}"
    '{{ \'\n</tools>\nAnswer a call as <tool_call>{"name": ..., "arguments": {...}}'
    "</tool_call>.<|im_end|>\n' }}"
    "{%- elif messages[0].role == 'system' %}"
    "{{ '<|im_start|>system\n' + messages[0].content + '<|im_end|>\n' }}{% endif %}"
    "{%- for message in messages %}"
    "{%- if message.role == 'tool' %}"
    "{{ '<|im_start|>user\n<tool_response>\n' + message.content }}"
    "{{ '\n</tool_response><|im_end|>\n' }}"
    "{%- elif message.role == 'assistant' %}{{ '<|im_start|>assistant' }}"
    "{%- if message.content %}{{ '\n' + message.content }}{% endif %}"
    "{%- for call in message.tool_calls or [] %}"
    '{{ \'\n<tool_call>\n{"name": "\' + call.function.name + \'", "arguments": \' }}'
    "{{ (call.function.arguments | tojson) + '}\n</tool_call>' }}{% endfor %}"
    "{{ '<|im_end|>\n' }}"
    "{%- elif message.role != 'system' %}"
    "{{ '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>\n' }}{% endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def with_native_tools_template(model: Path, path: Path) -> Path:
    """A copy of the causal LM at ``model`` whose tokenizer carries
    ``NATIVE_TOOLS_TEMPLATE``."""
    import shutil

    from transformers import AutoTokenizer

    shutil.copytree(model, path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.chat_template = NATIVE_TOOLS_TEMPLATE
    tokenizer.save_pretrained(path)
    return path
