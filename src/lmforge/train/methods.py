"""Which weights train: full fine-tuning, LoRA adapters (peft), or the top layers only."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from peft import LoraConfig, get_peft_model

from lmforge.errors import LmforgeError
from lmforge.train.fused_lora import fuse_lora_layers
from lmforge.train.int8_base import FrozenInt8Linear, apply_int8_base

# Attention projections per architecture: the usual LoRA targets.
DEFAULT_LORA_TARGETS: dict[str, list[str]] = {
    "llama": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "mistral": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "qwen2": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "gemma": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "bert": ["query", "key", "value"],
    "roberta": ["query", "key", "value"],
    "gpt2": ["c_attn"],
    "vit": ["query", "key", "value"],
    "clip_text_model": ["q_proj", "k_proj", "v_proj", "out_proj"],
    "clip_vision_model": ["q_proj", "k_proj", "v_proj", "out_proj"],
    # diffusers configs have no model_type: the class names it (diffusers' LoRA recipe)
    "UNet2DConditionModel": ["to_q", "to_k", "to_v", "to_out.0"],
}


@dataclass(frozen=True)
class MethodOptions:
    """The method section of a run config, as plain values."""

    name: str = "full"
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    target_modules: list[str] | str | None = None
    trainable_layers: int = 2
    lora_layers: int | None = None  # lora: only the top N transformer layers
    base_precision: str = "fp32"  # lora: int8 runs the frozen base on INT8 kernels
    peft_task_type: str | None = None  # from the task
    head_modules: tuple[str, ...] = ()  # from the task: new heads that must train
    frozen_modules: tuple[str, ...] = ()  # from the task: modules that never train
    fuse_lora: bool = True  # lora: the fused path; off for privacy (it skips Opacus' hooks)


MethodFn = Callable[[Any, MethodOptions, torch.device], Any]
METHODS: dict[str, MethodFn] = {}


def register_method(name: str, apply: MethodFn) -> None:
    """Make ``method.name: NAME`` call ``apply(model, options, device)``."""
    METHODS[name] = apply


def apply_method(model: Any, options: MethodOptions, device: torch.device) -> Any:
    """Return the model prepared for training with ``options.name``.

    Raises:
        LmforgeError: unknown method, or one this machine cannot run.
    """
    if options.name not in METHODS:
        raise LmforgeError(
            f"method.name: unknown method {options.name!r}; known: {', '.join(sorted(METHODS))}"
        )
    if options.base_precision != "fp32" and options.name != "lora":
        raise LmforgeError(
            f"method.base_precision: {options.base_precision!r} quantizes the frozen base of "
            f"LoRA training, and method {options.name!r} trains base weights; use "
            "method.name: lora or method.base_precision: fp32."
        )
    model = METHODS[options.name](model, options, device)
    for name in options.frozen_modules:
        for parameter in _named_module(model, name).parameters():
            parameter.requires_grad_(False)
    return model


def _named_module(model: Any, name: str) -> torch.nn.Module:
    """The submodule called ``name`` (for a peft model, inside its base model)."""
    matches = [module for path, module in model.named_modules()
               if path == name or path.endswith(f".{name}")]  # fmt: skip
    if not matches:
        raise LmforgeError(f"the model has no module {name!r} to freeze")
    return matches[0]


def count_parameters(model: Any) -> tuple[int, int]:
    """(trainable, total) parameter counts; an INT8 base's weights count as parameters."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    int8 = sum(m.qweight.numel() for m in model.modules() if isinstance(m, FrozenInt8Linear))
    return trainable, sum(p.numel() for p in model.parameters()) + int8


def _full(model: Any, options: MethodOptions, device: torch.device) -> Any:
    model.requires_grad_(True)
    return model


def _lora(model: Any, options: MethodOptions, device: torch.device) -> Any:
    targets = options.target_modules or _default_targets(model)
    model_type = getattr(model.config, "model_type", "")
    if targets is None:
        raise LmforgeError(
            f"method.target_modules: no default LoRA targets for architecture {model_type!r}; "
            "set method.target_modules to module names (e.g. [q_proj, v_proj]) or all-linear."
        )
    config = LoraConfig(
        r=options.lora_r,
        lora_alpha=options.lora_alpha,
        lora_dropout=options.lora_dropout,
        target_modules=targets,
        layers_to_transform=_top_layers(model, options.lora_layers),
        task_type=options.peft_task_type,
        modules_to_save=list(options.head_modules) or None,
    )
    model = get_peft_model(model, config)
    if options.fuse_lora:
        fuse_lora_layers(model)  # same math and adapter files, less memory and time
    if options.base_precision == "int8":
        apply_int8_base(model, device)
    return model


def _default_targets(model: Any) -> list[str] | None:
    """The usual LoRA targets of the model's architecture; for a dual encoder (CLIP), those
    of both towers."""
    towers: list[Any] = [getattr(model, name, None) for name in ("text_model", "vision_model")]
    if all(tower is not None for tower in towers):
        found = [DEFAULT_LORA_TARGETS.get(tower.config.model_type) for tower in towers]
        if any(targets is None for targets in found):
            return None
        return sorted({target for targets in found if targets for target in targets})
    model_type = getattr(model.config, "model_type", "") or type(model).__name__
    return DEFAULT_LORA_TARGETS.get(model_type)


def _top_layers(model: Any, count: int | None) -> list[int] | None:
    """The indices of the top ``count`` transformer layers (None: every layer)."""
    if count is None:
        return None
    total = len(transformer_layers(model))
    if count > total:
        raise LmforgeError(
            f"method.lora_layers: {count}, but the model has {total} transformer layers; "
            f"give at most {total}, or null to adapt them all."
        )
    return list(range(total - count, total))


def _qlora(model: Any, options: MethodOptions, device: torch.device) -> Any:
    raise LmforgeError(
        "method.name: qlora trains LoRA adapters on a 4-bit quantized base, which needs a "
        "CUDA GPU and bitsandbytes; this lmforge version does not run it. Use method.name: "
        "lora (the same adapters on an unquantized base)."
        if device.type == "cuda"
        else "method.name: qlora needs a CUDA GPU (4-bit bitsandbytes kernels) and this "
        "machine has none; use method.name: lora, which trains the same adapters on CPU."
    )


def transformer_layers(model: Any) -> torch.nn.ModuleList:
    """The model's stack of transformer blocks (its longest ModuleList)."""
    lists = [m for m in model.modules() if isinstance(m, torch.nn.ModuleList)]
    if not lists:
        raise LmforgeError("method freeze: this model has no list of transformer layers")
    return max(lists, key=len)


def _freeze(model: Any, options: MethodOptions, device: torch.device) -> Any:
    """Train the top N transformer layers plus everything after them (final norm,
    pooler, task head); N = 0 trains only what follows the last layer. A head tied to the
    input embeddings stays frozen with them. A dual encoder (CLIP) trains the top N layers
    of each tower, its projections and temperature; the task's new modules
    (``head_modules``) train whole."""
    towers = [getattr(model, name, None) for name in ("text_model", "vision_model")]
    if all(tower is not None for tower in towers):
        model.requires_grad_(True)
        for tower in towers:
            _freeze(tower, options, device)
        for name in options.head_modules:
            _named_module(model, name).requires_grad_(True)
        return model
    layers = transformer_layers(model)
    if options.trainable_layers > len(layers):
        raise LmforgeError(
            f"method.trainable_layers: {options.trainable_layers} but the model has only "
            f"{len(layers)} layers; use a number from 0 (the head alone) to {len(layers)}."
        )
    parameters = list(model.parameters())  # registration order: embeddings, layers, head
    if options.trainable_layers == 0:  # a linear probe: only what follows the last layer
        last_ids = {id(p) for p in layers[-1].parameters()}
        start = 1 + max(i for i, p in enumerate(parameters) if id(p) in last_ids)
    else:
        first_ids = {id(p) for p in layers[len(layers) - options.trainable_layers].parameters()}
        start = min(i for i, p in enumerate(parameters) if id(p) in first_ids)
    for index, parameter in enumerate(parameters):
        parameter.requires_grad_(index >= start)
    return model


register_method("full", _full)
register_method("lora", _lora)
register_method("qlora", _qlora)
register_method("freeze", _freeze)
