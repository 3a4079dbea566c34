"""Dynamic INT8 for LLaMA-family models, with SmoothQuant's outlier migration first.

Dynamic INT8 stores weights in INT8 and quantizes each row of activations to INT8 on
the fly, which is several times faster than fp32 on CPUs with VNNI. With one scale per
batch (before 2026-12-04) it hurt SmolLM2 badly on its own (held-out perplexity 15.5 ->
77.5, measured in ``benchmarks/bench_serve.py``): a few activation channels are far
larger than the rest, mostly at the input of the MLP's ``down_proj``, and one INT8 scale
cannot hold both. With one scale per row, an adapted SmolLM2's INT8 model came out
almost as close to fp32 without smoothing as with it (mean KL 0.076 against 0.073
nats per token; benchmarks/RESULTS.md, "quickstart grounded answers").

SmoothQuant (Xiao et al., 2023) divides each such input channel ``j`` by
``s_j = max|X_j|^a / max|W_j|^(1-a)`` and multiplies the weight column by it, which
leaves the fp32 function unchanged and moves the outliers into the weights, which
per-channel INT8 handles well. The division folds into the RMSNorm weights (for q, k, v,
gate and up) and into ``up_proj``'s rows (for ``down_proj``); LoRA adapters on those
layers are rescaled the same way. Activation maxima come from a few calibration texts.

``lmforge serve --quantize int8`` and ``lmforge compress --method int8-dynamic`` build
the same INT8 model (``quantize_layers`` in ``hub/quantized.py``: per-channel INT8
weights, dynamic INT8 activations, an INT8 embedding whose integers the tied head
reuses; on CPUs without VNNI the activations of a smoothed model use 7 bits). They used
to differ (serve went through ``torch.ao``'s ``quantize_dynamic``, which kept the
embedding fp32 and rounded weights to ``absmax / 127.5``) and, at equal quality,
answered differently; see docs/compress.md for their measured agreement.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from lmforge.hub.quantized import fuse_projections, quantize_layers
from lmforge.runtime.modules import unwrap

ALPHA = 0.9  # migration strength: measured best of 0.5-0.95 on SmolLM2 (see docs/serving.md)


def _base(linear: Any) -> torch.nn.Linear:
    return linear.base_layer if hasattr(linear, "base_layer") else linear


def _lora(linear: Any, part: str) -> list[torch.Tensor]:
    """The weights of every adapter's ``lora_A`` or ``lora_B`` on a peft layer."""
    modules = getattr(linear, part, None)
    return [m.weight for m in modules.values()] if modules is not None else []


@torch.no_grad()
def smooth(model: Any, calibration: Sequence[Sequence[int]], alpha: float = ALPHA) -> None:
    """Migrate activation outliers into the weights, in place (same fp32 outputs)."""
    maxima: dict[str, torch.Tensor] = {}

    def record(name: str) -> Any:
        def hook(module: Any, args: tuple[torch.Tensor, ...]) -> None:
            x = args[0].detach().abs().reshape(-1, args[0].shape[-1]).amax(0)  # (C,)
            maxima[name] = torch.maximum(maxima[name], x) if name in maxima else x

        return hook

    layers = unwrap(model).model.layers
    handles = []
    for i, layer in enumerate(layers):
        handles += [
            layer.self_attn.q_proj.register_forward_pre_hook(record(f"attn{i}")),
            layer.mlp.gate_proj.register_forward_pre_hook(record(f"mlp{i}")),
            layer.mlp.down_proj.register_forward_pre_hook(record(f"down{i}")),
        ]
    try:
        for ids in calibration:
            model(input_ids=torch.tensor([list(ids)]))
    finally:
        for handle in handles:
            handle.remove()

    def scales(name: str, linears: list[Any]) -> torch.Tensor:
        weight_max = torch.stack([_base(m).weight.abs().amax(0) for m in linears]).amax(0)
        s = maxima[name].clamp(min=1e-5) ** alpha / weight_max.clamp(min=1e-5) ** (1 - alpha)
        return s.clamp(min=1e-5)  # (C,)

    def scale_inputs(linears: list[Any], s: torch.Tensor) -> None:
        for linear in linears:
            _base(linear).weight.mul_(s[None, :])
            for lora_a in _lora(linear, "lora_A"):
                lora_a.mul_(s[None, :])

    for i, layer in enumerate(layers):
        attention, mlp = layer.self_attn, layer.mlp
        for name, norm, linears in (
            (
                f"attn{i}",
                layer.input_layernorm,
                [attention.q_proj, attention.k_proj, attention.v_proj],
            ),
            (f"mlp{i}", layer.post_attention_layernorm, [mlp.gate_proj, mlp.up_proj]),
        ):
            s = scales(name, linears)
            norm.weight.div_(s)
            scale_inputs(linears, s)
        s = scales(f"down{i}", [mlp.down_proj])
        _base(mlp.up_proj).weight.div_(s[:, None])
        if _base(mlp.up_proj).bias is not None:
            _base(mlp.up_proj).bias.div_(s)
        for lora_b in _lora(mlp.up_proj, "lora_B"):
            lora_b.div_(s[:, None])
        scale_inputs([mlp.down_proj], s)


def quantize_int8(model: Any, calibration: Sequence[Sequence[int]] = ()) -> Any:
    """Smooth (when calibration texts are given), fuse projections (without adapters),
    then dynamic INT8 for every linear layer except LoRA's own small matrices, and an
    INT8 token embedding: the layers ``lmforge compress --method int8-dynamic`` writes.
    Quantizes in place and returns the model."""
    if calibration:
        smooth(model, calibration)
    if not hasattr(model, "peft_config"):
        fuse_projections(model)
    quantize_layers(model, "int8-dynamic", outliers="weights" if calibration else "activations")
    return model
