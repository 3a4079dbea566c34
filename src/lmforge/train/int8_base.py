"""LoRA training on an INT8 frozen base: ``method.base_precision: int8``.

In LoRA training the base weights never change, yet every step multiplies by each of
them twice: the forward ``x W^T`` and the input gradient ``g W``. Both run here as
INT8 matrix multiplies (``torch._int_mm``: oneDNN's s8s8s32 GEMM, VNNI dot products),
which measured 2.7-5x the fp32 matmul's speed on the two-core Xeon (a 1784x576x1536
product: 6.6 ms against 17.8 ms in one run); with the quantization around them, SmolLM2
LoRA training went from 178 to 231 tokens/s (benchmarks/RESULTS.md, "train variants").
Adapters, norms, attention, the loss and the optimizer stay fp32.

Quantization, chosen for quality:

- weights: symmetric INT8 per output channel, once, at setup; the fp32 copy is freed.
- activations: symmetric INT8 per row (per token), on the fly. A token with a large
  activation then costs only its own precision, not the batch's (PyTorch's dynamic
  linear uses one scale per tensor).
- input gradient: ``g W = g (diag(s) Q) = (g diag(s)) Q``: the weight's per-channel
  scales are folded into the gradient's columns, which are then quantized per row
  and multiplied by the same INT8 weight ``Q``. One weight copy serves both products,
  and the backward is the exact transpose of the quantized forward (up to the
  gradient's own rounding), so the adapters see the gradient of the function the
  forward computed.

No weight gradient is computed: the base is frozen. The peft modules, their names and
the saved adapter are unchanged, so the adapter loads on the fp32 base as any other.
Without VNNI (AVX2-only CPUs) an INT8 GEMM is no faster than fp32, so there the base
stays fp32 and a warning says so.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any

import torch

from lmforge.errors import LmforgeError
from lmforge.hardware import has_int8_dot


@functools.cache
def cpu_has_int8_dot() -> bool:
    """Whether this CPU has VNNI INT8 dot products (AVX512-VNNI or AVX-VNNI)."""
    return has_int8_dot()


def quantize_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric INT8 per row: ``x ~ q * scale[:, None]``. Returns ``(q, scale)``.

    Written to avoid full-size temporaries where torch allows: ``amax`` and ``amin``
    read ``x`` without materializing ``x.abs()``.
    """
    peak = torch.maximum(x.amax(dim=1), x.amin(dim=1).neg_())  # (M,)
    scale = peak.div_(127.0).clamp_(min=1e-30)
    q = torch.div(x, scale[:, None]).round_().to(torch.int8)  # (M, K), |q| <= 127
    return q, scale


def int8_matmul(x: torch.Tensor, qweight_t: torch.Tensor, column_scale: torch.Tensor) -> Any:
    """``x @ (qweight_t * column_scale)`` with ``x`` quantized per row: (M, K) @ (K, N)."""
    q, row_scale = quantize_rows(x)
    acc = torch._int_mm(q, qweight_t)  # (M, N) int32
    # Convert first, then scale in place: torch.mul(int32, float) took 13 ms on a
    # 2048x1536 product on this CPU, against 2.3 ms for these three passes.
    return acc.float().mul_(row_scale[:, None]).mul_(column_scale)


class Int8LinearFunction(torch.autograd.Function):
    """y = x W^T + b for a frozen INT8 ``W``; backward gives the input gradient only."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, layer: FrozenInt8Linear) -> torch.Tensor:
        ctx.layer = layer
        return layer.product(x)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, None]:
        return ctx.layer.input_grad(grad_out) if ctx.needs_input_grad[0] else None, None


class FrozenInt8Linear(torch.nn.Module):
    """A frozen ``nn.Linear`` held as INT8 rows and their scales (see the module doc).

    ``product`` and ``input_grad`` work on (N, in) and (N, out) matrices; ``forward``
    takes any leading shape, like ``nn.Linear``.
    """

    qweight: torch.Tensor
    weight_scale: torch.Tensor

    def __init__(self, linear: torch.nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        with torch.no_grad():
            weight = linear.weight.detach().float()
            scale = (weight.abs().amax(dim=1) / 127).clamp(min=1e-30)  # (out,)
            q = torch.round(weight / scale[:, None]).clamp_(-127, 127).to(torch.int8)
        # Non-persistent: the state dict of a LoRA model is its adapters (peft saves only
        # those), and the integers are rebuilt from the fp32 base on every load.
        self.register_buffer("qweight", q, persistent=False)  # (out, in)
        self.register_buffer("weight_scale", scale, persistent=False)  # (out,)
        bias = linear.bias
        self.bias = (
            torch.nn.Parameter(bias.detach().clone(), requires_grad=False)
            if (bias is not None)
            else None
        )

    def product(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in) -> (N, out): ``x W^T + b``."""
        out = int8_matmul(x, self.qweight.t(), self.weight_scale)
        return out if self.bias is None else out.add_(self.bias)

    def input_grad(self, grad_out: torch.Tensor) -> torch.Tensor:
        """(N, out) -> (N, in): ``grad_out W``, scales folded into the gradient's columns."""
        grad = grad_out.reshape(-1, self.out_features)
        ones = torch.ones((), dtype=grad.dtype)
        return int8_matmul(grad * self.weight_scale, self.qweight, ones).view(
            *grad_out.shape[:-1], self.in_features
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features).float()  # (N, in)
        if torch.is_grad_enabled() and x.requires_grad:
            out = Int8LinearFunction.apply(flat, self)
        else:
            out = self.product(flat)
        return out.view(*x.shape[:-1], self.out_features).to(x.dtype)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8"


def quantize_frozen_base(model: torch.nn.Module, *, include_head: bool = False) -> int:
    """Replace every frozen ``nn.Linear`` of ``model`` by a ``FrozenInt8Linear``, in place.

    That is the ``base_layer`` inside each peft LoRA layer and every linear layer left
    unadapted; adapters (``lora_*``) and trainable layers (a classifier head) stay
    fp32. The output head (usually tied to the input embedding, which must stay fp32
    for lookups) is left alone unless ``include_head``.

    Returns:
        How many layers were quantized.

    Raises:
        LmforgeError: the model has no frozen ``nn.Linear`` layer to quantize.
    """
    chosen = frozen_linears(model, include_head=include_head)
    for name, module in chosen:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, FrozenInt8Linear(module))
    return len(chosen)


def frozen_linears(
    model: torch.nn.Module, *, include_head: bool = False
) -> list[tuple[str, torch.nn.Linear]]:
    """The (name, layer) pairs ``quantize_frozen_base`` replaces.

    Raises:
        LmforgeError: there are none.
    """
    get_head = getattr(model, "get_output_embeddings", None)
    head = get_head() if callable(get_head) else None
    chosen = [
        (name, module)
        for name, module in model.named_modules()
        if type(module) is torch.nn.Linear
        and "lora_" not in name
        and not module.weight.requires_grad
        and (module.bias is None or not module.bias.requires_grad)
        and (include_head or module is not head)
    ]
    if not chosen:
        kinds = sorted({type(m).__name__ for m in model.modules() if hasattr(m, "weight")})
        raise LmforgeError(
            "method.base_precision: int8 found no frozen torch.nn.Linear layer to quantize "
            f"in this model (its weighted layers are {', '.join(kinds[:6]) or 'none'}); "
            "use method.base_precision: fp32."
        )
    return chosen


def apply_int8_base(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``method.base_precision: int8`` for a peft model on ``device``: quantize the frozen
    base where the CPU has INT8 dot products, warn and keep fp32 elsewhere.

    Raises:
        LmforgeError: not a CPU run, or no linear layer to quantize.
    """
    if device.type != "cpu":
        raise LmforgeError(
            f"method.base_precision: int8 runs on CPU INT8 kernels, and this run trains on "
            f"{device.type}; use method.base_precision: fp32 there."
        )
    frozen_linears(model)  # the same error on every CPU
    if not cpu_has_int8_dot():
        warnings.warn(
            "method.base_precision int8: this CPU has no VNNI INT8 dot products, where "
            "INT8 matmuls are no faster than fp32; training with the fp32 base instead.",
            stacklevel=2,
        )
        return model
    quantize_frozen_base(model)
    return model
