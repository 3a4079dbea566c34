"""A leaner training path for peft LoRA linear layers.

peft computes ``base(x) + B(A(dropout(x))) * scaling`` with ordinary modules, so for
every adapted layer autograd keeps a float dropout mask and the dropped-out copy of
``x`` (8 bytes per input element), and draws the mask with ``bernoulli_``, the
slowest random generator torch has on CPU. On SmolLM2 with q/k/v/o adapters that is
about a gigabyte of saved activations at batch 8 and a tenth of the step time.

``LoraLinearFunction`` computes the same function with a hand-written backward: it
saves ``x`` itself (q, k and v share one input, so it is stored once), a 1-byte keep
mask, and the rank-r intermediate. The mask is drawn from torch's default generator
(so seeding and checkpoint resume stay deterministic) as 15-bit integers, so the
dropout probability is rounded to a multiple of 1/32768.

The modules, their parameters and the saved adapter are peft's own: only the forward
of each ``peft.tuners.lora.Linear`` is swapped, and it falls back to peft's forward
for anything this path does not cover (merged or disabled adapters, several active
adapters, DoRA and other variants, trainable base weights, autocast).
"""

from __future__ import annotations

import types
from typing import Any

import torch
import torch.nn.functional as F
from peft.tuners.lora.layer import Linear as LoraLinear

from lmforge.train.int8_base import FrozenInt8Linear

_RANDOM_BITS = 15  # int16 lanes with the sign bit cleared


def keep_mask(shape: torch.Size, p: float) -> torch.Tensor:
    """A bool mask where each element is False with probability ``p`` (to 1/32768)."""
    count = shape.numel()
    words = torch.empty((count + 3) // 4, dtype=torch.int64).random_()  # 4 int16 lanes each
    lanes = words.view(torch.int16)[:count].view(shape)
    # random_() leaves the int64 sign bit clear, so only the low 15 bits of every lane
    # are uniform; drop bit 15 from all lanes.
    return (lanes & (2**_RANDOM_BITS - 1)) >= round(p * 2**_RANDOM_BITS)


class LoraLinearFunction(torch.autograd.Function):
    """y = x W^T + b + scaling * (dropout(x) A^T) B^T with frozen W and b.

    ``weight`` is the fp32 matrix, or a ``FrozenInt8Linear`` (``method.base_precision:
    int8``), which then computes both base products, bias included, in INT8.
    """

    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,  # (N, in)
        weight: torch.Tensor | FrozenInt8Linear,  # (out, in), frozen
        bias: torch.Tensor | None,
        lora_a: torch.Tensor,  # (r, in)
        lora_b: torch.Tensor,  # (out, r)
        scaling: float,
        keep: torch.Tensor | None,  # (N, in) bool, None without dropout
        keep_scale: float,  # 1 / (1 - p)
    ) -> torch.Tensor:
        dropped = x if keep is None else torch.where(keep, x, 0.0)
        low_rank = (dropped @ lora_a.t()).mul_(keep_scale)  # (N, r)
        if isinstance(weight, FrozenInt8Linear):
            out = weight.product(x)  # (N, out)
            ctx.int8_base, fp32_weight = weight, None
        else:
            out = F.linear(x, weight, bias)  # (N, out)
            ctx.int8_base, fp32_weight = None, weight
        out.addmm_(low_rank, lora_b.t(), alpha=scaling)
        ctx.save_for_backward(x, fp32_weight, lora_a, lora_b, low_rank, keep)
        ctx.scaling, ctx.keep_scale = scaling, keep_scale
        return out

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight, lora_a, lora_b, low_rank, keep = ctx.saved_tensors
        grad_b = (grad_out.t() @ low_rank).mul_(ctx.scaling)  # (out, r)
        # Gradient at the dropped-out input of A, with the 1/(1-p) folded in: (N, r)
        grad_low = (grad_out @ lora_b).mul_(ctx.scaling * ctx.keep_scale)
        dropped = x if keep is None else torch.where(keep, x, 0.0)
        grad_a = grad_low.t() @ dropped  # (r, in)
        grad_x = None
        if ctx.needs_input_grad[0]:
            lora_part = grad_low @ lora_a  # (N, in)
            if keep is not None:
                lora_part = torch.where(keep, lora_part, 0.0)
            if ctx.int8_base is not None:
                grad_x = lora_part.add_(ctx.int8_base.input_grad(grad_out))
            else:
                grad_x = lora_part.addmm_(grad_out, weight)
        return grad_x, None, None, grad_a, grad_b, None, None, None


def _fused_forward(self: Any, x: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
    adapters = [name for name in self.active_adapters if name in self.lora_A]
    base = self.base_layer
    dropout = self.lora_dropout[adapters[0]] if len(adapters) == 1 else None
    usable = (
        len(adapters) == 1
        and not (args or kwargs or self.disable_adapters or self.merged)
        and adapters[0] not in self.lora_variant
        and (
            isinstance(base, FrozenInt8Linear)
            or (isinstance(base, torch.nn.Linear) and not base.weight.requires_grad)
        )
        and (base.bias is None or not base.bias.requires_grad)
        and isinstance(dropout, torch.nn.Dropout | torch.nn.Identity)
        and x.dtype == self.lora_A[adapters[0]].weight.dtype
        and (isinstance(base, FrozenInt8Linear) or x.dtype == base.weight.dtype)
        and not torch.is_autocast_enabled(x.device.type)
        and torch.is_grad_enabled()
    )
    if not usable:
        return self._peft_forward(x, *args, **kwargs)
    name = adapters[0]
    p = dropout.p if isinstance(dropout, torch.nn.Dropout) and dropout.training else 0.0
    flat = x.reshape(-1, x.shape[-1])  # (N, in)
    keep = keep_mask(flat.shape, p) if p > 0 else None
    out = LoraLinearFunction.apply(
        flat,
        base if isinstance(base, FrozenInt8Linear) else base.weight,
        base.bias,
        self.lora_A[name].weight,
        self.lora_B[name].weight,
        self.scaling[name],
        keep,
        1.0 / (1.0 - p),
    )
    return out.view(*x.shape[:-1], out.shape[-1])


def fuse_lora_layers(model: torch.nn.Module) -> int:
    """Route every peft LoRA ``Linear`` in ``model`` through the fused path.

    Returns:
        How many layers now use it.
    """
    count = 0
    for module in model.modules():
        if type(module) is LoraLinear and not hasattr(module, "_peft_forward"):
            # Instance attributes: the class, its state dict and saved adapters are untouched.
            object.__setattr__(module, "_peft_forward", module.forward)
            object.__setattr__(module, "forward", types.MethodType(_fused_forward, module))
            count += 1
    return count
