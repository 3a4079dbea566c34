"""Quantized models that save to safetensors and load back.

``lmforge compress`` writes a quantized model as a transformers directory (its fp32
``config.json`` and tokenizer) plus ``model.safetensors`` holding the integer weights and
their scales, and ``lmforge_compress.json`` saying which layer holds what. Loading
builds the architecture from the config, repeats the structural changes the quantizer
made (fused projections), puts a quantized module in each listed layer and loads the
remaining (fp32) tensors. No pickle, so the file is as safe to load as any safetensors.

Three layer schemes, each on PyTorch's own CPU kernels:

- ``int8-dynamic``: weights INT8 per output channel, activations quantized to INT8 per
  row on the fly (fbgemm's dynamic op, VNNI; ``linear_rows``), so a row's result does
  not depend on the batch it is in.
- ``int8``: weight-only INT8 per output channel, fp32 activations.
- ``int4``: weight-only INT4 in groups of 32 along the input, each group with its own
  scale and offset, like llama.cpp's Q4_1.

Weight-only layers keep their integers on disk and run as fp32 matmuls on the weights
dequantized at load. PyTorch's CPU weight-only kernels (``aten._weight_int8pack_mm``,
``aten._weight_int4pack_mm_for_cpu``, what torchao calls on CPU) measured 5x (INT8) and
10x (INT4) slower than the fp32 matmul here at batch 1 and 30-60x at 32 rows
(docs/compress.md), so the fastest way to run these files on this CPU is fp32: they
save disk and download, not compute. For speed use ``int8-dynamic`` (VNNI) or a GGUF
file through llama.cpp.

The token embedding is stored in INT8 (INT4 for ``int4``) and dequantized row by row on
lookup; a language-model head tied to it reuses the same integers, so they are stored
once, as in the fp32 model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch.ao.nn.quantized.dynamic import Linear as AoDynamicLinear
from transformers import AutoConfig

from lmforge.errors import LmforgeError
from lmforge.hardware import has_int8_dot
from lmforge.runtime.modules import unwrap

QUANT_FILE = "lmforge_compress.json"
WEIGHTS_FILE = "model.safetensors"
SCHEMES = ("int8-dynamic", "int8", "int4")
INT4_GROUP = 32


def is_quantized_dir(path: Path) -> bool:
    """Whether a model directory was written by ``lmforge compress`` with quantization."""
    return bool(read_quant_meta(path).get("scheme"))


def read_quant_meta(path: Path) -> dict[str, Any]:
    """The ``lmforge_compress.json`` of a compressed model directory ({} when absent)."""
    meta = Path(path) / QUANT_FILE
    if not meta.is_file():
        return {}
    try:
        data = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise LmforgeError(
            f"cannot read {meta}: {error}; compress the source model again."
        ) from None
    return data if isinstance(data, dict) else {}


# --- integer weights -------------------------------------------------------------------


def int8_rows(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric INT8 per row: ``weight ~ q * scale[:, None]``. Returns ``(q, scale)``."""
    scale = (weight.abs().amax(dim=1) / 127).clamp(min=1e-8).float()  # (N,)
    q = torch.round(weight / scale[:, None]).clamp(-127, 127).to(torch.int8)  # (N, K)
    return q, scale


def int4_groups(
    weight: torch.Tensor, group: int = INT4_GROUP
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Asymmetric INT4 in groups of ``group`` input columns.

    Returns ``(packed, scale, low)``: ``packed`` (N, K/2) uint8 holds columns 2j and
    2j+1 in the low and high nibble of byte j; value = ``q * scale + low`` per group,
    ``scale`` and ``low`` (N, K/group) in fp16.
    """
    rows, columns = weight.shape
    grouped = weight.float().reshape(rows, columns // group, group)
    low, high = grouped.amin(dim=-1), grouped.amax(dim=-1)  # (N, G)
    scale = ((high - low) / 15).clamp(min=1e-8).half()
    low = low.half()
    q = torch.round((grouped - low.float()[..., None]) / scale.float()[..., None]).clamp(0, 15)
    q = q.to(torch.uint8).reshape(rows, columns)
    return q[:, 0::2] | (q[:, 1::2] << 4), scale, low


def _unpack_int4(packed: torch.Tensor) -> torch.Tensor:
    """(…, K/2) uint8 -> (…, K) uint8 in 0..15, column order restored."""
    return torch.stack([packed & 15, packed >> 4], dim=-1).flatten(-2)


def _dequant_int4(packed: torch.Tensor, scale: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
    q = _unpack_int4(packed).float()  # (…, K)
    groups = scale.shape[-1]
    q = q.unflatten(-1, (groups, -1))  # (…, G, group)
    return (q * scale.float()[..., None] + low.float()[..., None]).flatten(-2)


class Int8Linear(torch.nn.Module):
    """Weight-only INT8 linear layer: INT8 rows and their scales, run in fp32."""

    def __init__(self, q: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__()
        self.out_features, self.in_features = q.shape
        self.register_buffer("qweight", q)
        self.register_buffer("scales", scale)
        self.bias = torch.nn.Parameter(bias, requires_grad=False) if bias is not None else None
        self._weight = q.float() * scale[:, None]  # dequantized once (see the module doc)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self._weight, self.bias)


class Int4Linear(torch.nn.Module):
    """Weight-only INT4 linear layer in groups of 32, run in fp32."""

    def __init__(
        self, packed: torch.Tensor, scale: torch.Tensor, low: torch.Tensor,
        bias: torch.Tensor | None,
    ) -> None:  # fmt: skip
        super().__init__()
        self.out_features, self.in_features = packed.shape[0], packed.shape[1] * 2
        self.group = self.in_features // scale.shape[1]
        self.register_buffer("qweight", packed)
        self.register_buffer("scales", scale)
        self.register_buffer("lows", low)
        self.bias = torch.nn.Parameter(bias, requires_grad=False) if bias is not None else None
        self._weight = _dequant_int4(packed, scale, low)  # once (see the module doc)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self._weight, self.bias)


class QuantizedEmbedding(torch.nn.Module):
    """A token embedding stored as INT8 rows or INT4 groups, dequantized on lookup."""

    qweight: torch.Tensor
    scales: torch.Tensor
    lows: torch.Tensor | None

    def __init__(
        self, q: torch.Tensor, scale: torch.Tensor, low: torch.Tensor | None,
        padding_idx: int | None = None,
    ) -> None:  # fmt: skip
        super().__init__()
        self.num_embeddings = q.shape[0]
        self.padding_idx = padding_idx
        self.register_buffer("qweight", q)
        self.register_buffer("scales", scale)
        if low is not None:
            self.register_buffer("lows", low)
        else:
            self.lows = None
        self.embedding_dim = q.shape[1] * (2 if low is not None else 1)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        rows = F.embedding(ids, self.qweight)  # (…, K) int8 or (…, K/2) uint8
        if self.lows is None:
            return rows.float() * F.embedding(ids, self.scales[:, None])
        return _dequant_int4(rows, F.embedding(ids, self.scales), F.embedding(ids, self.lows))

    @property
    def weight(self) -> torch.Tensor:
        """The dequantized matrix (for code that reads ``embedding.weight``)."""
        return self(torch.arange(self.num_embeddings))


OUTLIERS = ("activations", "weights")


class DynamicInt8Linear(AoDynamicLinear):
    """``torch.ao``'s dynamic INT8 linear layer that chooses which operand keeps 8 bits.

    fbgemm multiplies unsigned 8-bit activations by signed 8-bit weights. With VNNI
    (AVX512-VNNI or AVX-VNNI) the products are summed in 32 bits and both operands keep
    8 bits. Without it (AVX2) pairs of products are summed in 16 bits first, which
    saturate when both operands use all 8 bits (a random-init model's logits then err by
    0.31 instead of 0.02), so one operand gets 7: the one without the outliers.
    ``outliers="activations"`` (a model as trained) cuts the weights, which are scaled
    per output channel; ``"weights"`` (after SmoothQuant moved the outliers into them)
    cuts the activations, as PyTorch's ``reduce_range`` does. Measured on an AVX2-only
    AMD EPYC: MiniLM's embeddings, cosine to fp32 0.991 with 7-bit weights against 0.976
    with 7-bit activations; SmoothQuant'd SmolLM2's next-token agreement with fp32 81.3%
    with 7-bit activations against 78.4% with 7-bit weights.

    ``stored`` keeps the 8-bit rows the layer was built from, so a model saved on one
    CPU loads with 8-bit weights on another.
    """

    reduce_range = False  # 7-bit activations
    stored: tuple[torch.Tensor, torch.Tensor]
    row_bias: torch.Tensor | None  # added after the op (``linear_rows``), not packed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        packed = self._packed_params._packed_params
        return linear_rows(x, packed, self.reduce_range, self.row_bias)

    def bias(self) -> torch.Tensor | None:
        return self.row_bias


def linear_rows(
    x: torch.Tensor, packed: Any, reduce_range: bool, bias: torch.Tensor | None
) -> torch.Tensor:
    """``x @ W.T + bias`` for fbgemm's packed INT8 ``W`` (packed without a bias), each row of
    ``x`` quantized to INT8 with its own scale.

    fbgemm's dynamic op quantizes its whole input with one range, so a row's result would
    depend on the rows beside it: under continuous batching a request's greedy answer
    changed with the traffic it shared a batch with (the quickstart model's answers to the
    held-out questions scored 30/33 one at a time, 27/33 in batches of 8 and 26/33 in
    batches of 16). Here each row is divided by its largest magnitude, so it spans at most
    [-1, 1], and a row holding -1 and 1 goes in with them, so the op's range is [-1, 1]
    whatever the batch; the outputs are scaled back row by row. A row's result is then
    the same bits in any batch, and one large row (a prompt's first token) no longer
    coarsens the others' steps.
    """
    rows = x.reshape(-1, x.shape[-1])
    peak = rows.abs().amax(dim=1, keepdim=True).clamp_min(torch.finfo(torch.float32).tiny)
    unit = torch.cat((rows / peak, _unit_range(rows.shape[1])))
    out = torch.ops.quantized.linear_dynamic(unit, packed, reduce_range)[:-1] * peak
    if bias is not None:
        out += bias
    return out.reshape(*x.shape[:-1], out.shape[-1]).to(x.dtype)


_UNIT_RANGES: dict[int, torch.Tensor] = {}


def _unit_range(width: int) -> torch.Tensor:
    """A (1, width) row holding -1 and 1, zeros elsewhere (made once per width)."""
    if width not in _UNIT_RANGES:
        row = torch.zeros(1, width)
        row[0, 0], row[0, -1] = -1.0, 1.0
        _UNIT_RANGES[width] = row
    return _UNIT_RANGES[width]


def seven_bit_rows(q: torch.Tensor, scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """INT8 rows ``q * scale`` requantized into -63..63 (each scale grown by 127/63)."""
    wider = scale * 127 / 63
    return torch.round(q.float() * (scale / wider)[:, None]).clamp(-63, 63).to(torch.int8), wider


def dynamic_int8_linear(
    q: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None, outliers: str = "activations"
) -> torch.nn.Module:
    """A dynamic INT8 linear layer holding ``q * scale`` per output channel; on CPUs
    without VNNI the operand that does not hold ``outliers`` runs in 7 bits."""
    if outliers not in OUTLIERS:
        raise ValueError(f"outliers must be one of {OUTLIERS}, not {outliers!r}")
    layer = DynamicInt8Linear(q.shape[1], q.shape[0], bias_=bias is not None, dtype=torch.qint8)
    layer.stored = (q, scale)
    packed_q, packed_scale = q, scale
    if not has_int8_dot():
        if outliers == "weights":
            layer.reduce_range = True
        else:
            packed_q, packed_scale = seven_bit_rows(q, scale)
    zero = torch.zeros(q.shape[0], dtype=torch.long)
    weight = torch._make_per_channel_quantized_tensor(packed_q, packed_scale.double(), zero, 0)
    layer.set_weight_bias(weight, None)
    layer.row_bias = bias
    return layer


# --- fused projections (a structural change the loader must repeat) ---------------------


class _Rows(torch.nn.Module):
    """Some output rows of a fused linear layer, so code that calls ``q_proj(x)`` still
    works after q, k and v became one ``qkv_proj``.

    It looks the fused layer up by name on each call, so it runs whatever replaced it
    (quantization swaps ``qkv_proj`` for an INT8 module).
    """

    def __init__(self, owner: torch.nn.Module, fused_name: str, start: int, end: int) -> None:
        super().__init__()
        self.owner = [owner]  # a list: not a submodule (the owner holds this module)
        self.fused_name, self.start, self.end = fused_name, start, end

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return getattr(self.owner[0], self.fused_name)(x)[..., self.start : self.end]


def _fuse(owner: torch.nn.Module, names: list[str], fused_name: str) -> None:
    """Replace linears that read the same input by one whose rows are theirs stacked."""
    parts = [getattr(owner, name) for name in names]
    weight = torch.cat([p.weight for p in parts])
    biases = [p.bias if p.bias is not None else torch.zeros(p.out_features) for p in parts]
    fused = torch.nn.Linear(
        weight.shape[1], weight.shape[0], bias=any(p.bias is not None for p in parts)
    )
    with torch.no_grad():
        fused.weight.copy_(weight)
        if fused.bias is not None:
            fused.bias.copy_(torch.cat(biases))
    setattr(owner, fused_name, fused)
    start = 0
    for name, part in zip(names, parts, strict=True):
        setattr(owner, name, _Rows(owner, fused_name, start, start + part.out_features))
        start += part.out_features


def fuse_projections(model: Any) -> None:
    """q, k, v into ``qkv_proj`` and gate, up into ``gate_up_proj`` (fewer, larger matmuls;
    with dynamic INT8 also one activation quantization instead of three)."""

    for layer in unwrap(model).model.layers:
        _fuse(layer.self_attn, ["q_proj", "k_proj", "v_proj"], "qkv_proj")
        _fuse(layer.mlp, ["gate_proj", "up_proj"], "gate_up_proj")


# --- whole models ----------------------------------------------------------------------


def quantize_layers(
    model: Any, scheme: str, *, skip: tuple[str, ...] = (), outliers: str = "activations"
) -> dict[str, str]:
    """Quantize, in place, every linear layer (and the token embedding) of ``model``.

    A head tied to the embedding shares its integers. Linear layers whose input width
    does not split into INT4 groups stay INT8 under ``int4``. ``outliers``: which operand
    of ``int8-dynamic`` keeps 8 bits on CPUs without VNNI (``DynamicInt8Linear``).
    Returns ``{layer name: what it holds now}``, the map ``lmforge_compress.json`` records.
    """
    if scheme not in SCHEMES:
        raise LmforgeError(f"quantization scheme must be one of {', '.join(SCHEMES)}, not "
                           f"'{scheme}'")  # fmt: skip
    layers: dict[str, str] = {}
    embedding = model.get_input_embeddings()
    head = model.get_output_embeddings()
    tied = head is not None and head.weight is embedding.weight
    names = {module: name for name, module in model.named_modules()}
    with torch.no_grad():
        weight = embedding.weight.detach().float()
        low: torch.Tensor | None = None
        if scheme == "int4" and weight.shape[1] % INT4_GROUP == 0:
            q, scale, low = int4_groups(weight)
            layers[names[embedding]] = "embedding-int4"
        else:
            q, scale = int8_rows(weight)
            layers[names[embedding]] = "embedding-int8"
        parts = (q, scale, low)
        quantized_embedding = QuantizedEmbedding(q, scale, low, padding_idx=embedding.padding_idx)
        for name, module in list(model.named_modules()):
            if not isinstance(module, torch.nn.Linear) or name in skip or "lora_" in name:
                continue
            if tied and module is head:
                kind, layer = _tied_head(scheme, parts, outliers)
            else:
                weight = module.weight.detach().float()
                kind, layer = _quantize_linear(scheme, weight, module.bias, outliers)
            layers[name] = kind
            _set_module(model, name, layer)
        _set_module(model, names[embedding], quantized_embedding)
    return layers


def _quantize_linear(
    scheme: str, weight: torch.Tensor, bias: torch.Tensor | None, outliers: str
) -> tuple[str, torch.nn.Module]:
    bias = bias.detach().float().clone() if bias is not None else None
    if scheme == "int4" and weight.shape[1] % INT4_GROUP == 0:
        return "int4", Int4Linear(*int4_groups(weight), bias)
    q, scale = int8_rows(weight)
    if scheme == "int8-dynamic":
        return "int8-dynamic", dynamic_int8_linear(q, scale, bias, outliers)
    return "int8", Int8Linear(q, scale, bias)


def _tied_head(scheme: str, parts: tuple[Any, ...], outliers: str) -> tuple[str, torch.nn.Module]:
    """The LM head built from the embedding's integers (one copy on disk)."""
    q, scale, low = parts
    if low is not None:
        return "tied-int4", Int4Linear(q, scale, low, None)
    if scheme == "int8-dynamic":
        head = dynamic_int8_linear(q, scale, None, outliers)  # packs its own integers
        setattr(head, "tied", True)  # noqa: B010  (parameter counts take it once, as fp32)
        return "tied-int8-dynamic", head
    return "tied-int8", Int8Linear(q, scale, None)


def _set_module(model: Any, name: str, module: torch.nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, module)


def quantized_state(model: Any, layers: dict[str, str]) -> dict[str, torch.Tensor]:
    """Every tensor needed to rebuild ``model``: integer weights and scales of the
    quantized layers (a tied head adds nothing), and the fp32 tensors of the rest."""
    tensors: dict[str, torch.Tensor] = {}
    quantized = set(layers)
    for name, module in model.named_modules():
        if name in quantized:
            if layers[name].startswith("tied-"):
                continue
            tensors.update(
                {f"{name}.{key}": value for key, value in _layer_tensors(module).items()}
            )
            continue
        if _inside(name, quantized):
            continue  # inside a quantized layer (torch.ao keeps packed params there)
        prefix = f"{name}." if name else ""
        for key, param in module.named_parameters(recurse=False):
            tensors[prefix + key] = param.detach()
        for key, buffer in module.named_buffers(recurse=False):
            if buffer is not None and key not in module._non_persistent_buffers_set:
                tensors[prefix + key] = buffer
    return {key: value.contiguous() for key, value in tensors.items()}


def _inside(key: str, layers: set[str]) -> bool:
    """Whether ``key`` names something within one of ``layers`` (``a.b.c`` is in ``a.b``)."""
    parts = key.split(".")
    return any(".".join(parts[:i]) in layers for i in range(1, len(parts)))


def _layer_tensors(module: Any) -> dict[str, torch.Tensor]:
    if isinstance(module, Int8Linear | Int4Linear | QuantizedEmbedding):
        found = {k: v for k, v in module.named_buffers(recurse=False) if v is not None}
        bias = getattr(module, "bias", None)
        if isinstance(bias, torch.Tensor):
            found["bias"] = bias.detach()
        return found
    q, scale = module.stored  # a DynamicInt8Linear: its 8-bit rows, whatever it packed
    found = {"qweight": q, "scales": scale.float()}
    if module.bias() is not None:
        found["bias"] = module.bias().detach()
    return found


def load_quantized(path: Path, auto_class: Any) -> Any:
    """Rebuild a model saved by ``lmforge compress`` (see the module docstring).

    Raises:
        LmforgeError: the weights file is missing, unreadable or does not match the
            config (naming the layers), so the directory must be written again.
    """
    path = Path(path)
    meta = read_quant_meta(path)
    weights = path / WEIGHTS_FILE
    try:
        tensors = load_file(str(weights))
    except (OSError, ValueError, RuntimeError) as error:
        raise LmforgeError(f"cannot read the quantized weights {weights} ({error}); compress "
                           "the source model again.") from None  # fmt: skip
    config = AutoConfig.from_pretrained(path)
    model = auto_class.from_config(config)
    if meta.get("fused"):
        fuse_projections(model)
    layers: dict[str, str] = meta["layers"]
    outliers = "weights" if "smoothquant_alpha" in meta else "activations"
    # fp32 tensors first, while every layer still has its usual module
    rest = {k: v for k, v in tensors.items() if not _inside(k, set(layers))}
    missing, unexpected = model.load_state_dict(rest, strict=False)
    missing = [key for key in missing if not _inside(key, set(layers))]
    if missing or unexpected:
        raise LmforgeError(
            f"{weights} does not match {path / 'config.json'}: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}; compress the source model again."
        )
    try:
        for name, kind in layers.items():
            if not kind.startswith("tied-"):
                _set_module(model, name, _rebuild(kind, name, tensors, model, outliers))
        for name, kind in layers.items():
            if kind.startswith("tied-"):
                head = _tied_head(kind[5:], _embedding_parts(model), outliers)[1]
                _set_module(model, name, head)
    except KeyError as error:
        raise LmforgeError(f"{weights} lacks tensor {error} that {QUANT_FILE} names; compress "
                           "the source model again.") from None  # fmt: skip
    model.eval()
    return model


def _rebuild(
    kind: str, name: str, tensors: dict[str, torch.Tensor], model: Any, outliers: str
) -> torch.nn.Module:
    def get(key: str) -> torch.Tensor:
        return tensors[f"{name}.{key}"]

    bias = tensors.get(f"{name}.bias")
    if kind.startswith("embedding-"):
        padding = getattr(model.get_submodule(name), "padding_idx", None)
        low = get("lows") if kind == "embedding-int4" else None
        return QuantizedEmbedding(get("qweight"), get("scales"), low, padding_idx=padding)
    if kind == "int4":
        return Int4Linear(get("qweight"), get("scales"), get("lows"), bias)
    if kind == "int8-dynamic":
        return dynamic_int8_linear(get("qweight"), get("scales"), bias, outliers)
    if kind == "int8":
        return Int8Linear(get("qweight"), get("scales"), bias)
    raise LmforgeError(f"unknown quantized layer kind '{kind}' for {name} in {QUANT_FILE}; "
                       "this lmforge cannot load it (upgrade lmforge).")  # fmt: skip


def _embedding_parts(model: Any) -> tuple[Any, ...]:
    embedding = model.get_input_embeddings()
    return embedding.qweight, embedding.scales, embedding.lows
