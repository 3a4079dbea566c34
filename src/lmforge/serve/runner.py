"""Run a LLaMA-family model over a slot KV cache, for continuous batching.

Hugging Face's generation keeps one cache per batch and grows it by concatenation, so
sequences cannot join or leave a running batch. Here the cache is one preallocated
tensor per layer with a row ("slot") per sequence: a sequence writes its keys and
values at its own positions, sequences of different lengths decode together, and a
finished sequence's slot can be kept for a later request that shares its prefix (a
conversation's next turn).

The model's own modules do the work (projections, norms, MLP, rotary embedding), so a
peft-wrapped model runs its LoRA layers unchanged; only attention over the cache is
written here. The running sequences always occupy slots ``0..B-1`` so a decode step
reads the cache as a view, without copying it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from lmforge.errors import LmforgeError
from lmforge.hub.quantized import DynamicInt8Linear, linear_rows
from lmforge.runtime.modules import unwrap

SUPPORTED_ARCHITECTURES = ("llama", "mistral", "qwen2")


class SlotRunner:
    """Prefill and decode steps for a causal LM over ``slots`` cache rows.

    Args:
        model: a LLaMA, Mistral or Qwen2 causal LM (optionally with peft adapters).
        slots: how many sequences the cache holds (running plus kept for reuse).
        max_len: the longest sequence (prompt + completion) a slot holds.
        batch_invariant: decoding rows attend one at a time (the engine then prefills
            every prompt whole), so a row's logits are the same bits whatever it is
            batched with (``_forward``);
            ``lmforge eval`` decodes so. Measured per step of SmolLM2-135M INT8 on 2
            cores, ~300-token rows: 51.4 -> 52.8 ms at 8 rows, 81.8 -> 106.7 at 16.

    Raises:
        LmforgeError: the architecture is not one this runner implements.
    """

    def __init__(
        self, model: Any, slots: int, max_len: int, *, batch_invariant: bool = False
    ) -> None:
        config = model.config
        model_type = getattr(config, "model_type", "")
        if model_type not in SUPPORTED_ARCHITECTURES:
            raise LmforgeError(
                f"serving architecture {model_type!r} is not supported; supported: "
                f"{', '.join(SUPPORTED_ARCHITECTURES)}."
            )
        if getattr(config, "sliding_window", None) and config.sliding_window < max_len:
            max_len = config.sliding_window  # beyond it the model attends differently
        self.model = model
        causal_lm = unwrap(model)  # the transformers model inside a peft wrapper
        self.decoder, self.lm_head = causal_lm.model, causal_lm.lm_head
        self.heads = config.num_attention_heads
        self.kv_heads = getattr(config, "num_key_value_heads", None) or self.heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads
        self.slots, self.max_len = slots, max_len
        self.batch_invariant = batch_invariant
        parameter = next(model.parameters())
        # The cache grows along the sequence axis as sequences get longer, so memory
        # follows what is used rather than slots x max_len.
        shape = (len(self.decoder.layers), slots, self.kv_heads, min(256, max_len), self.head_dim)
        self.keys = torch.zeros(shape, dtype=parameter.dtype, device=parameter.device)
        self.values = torch.zeros_like(self.keys)
        self.lengths = [0] * slots  # tokens cached per slot
        self.device = parameter.device
        self._direct = {m: _direct_int8(m) for m in model.modules() if _is_int8_linear(m)}

    def _project(self, linear: Any, x: torch.Tensor) -> torch.Tensor:
        return self._direct.get(linear, linear)(x)

    # --- cache bookkeeping ----------------------------------------------------------

    # The cache grows inside a step (``_reserve``), under inference mode, and a tensor
    # made there may only be updated in place under inference mode: swap and copy too.
    @torch.inference_mode()
    def swap(self, a: int, b: int) -> None:
        """Exchange the contents of two slots."""
        if a == b:
            return
        used = max(self.lengths[a], self.lengths[b])
        for cache in (self.keys, self.values):
            rows = cache[:, [a, b], :, :used].clone()
            cache[:, [b, a], :, :used] = rows
        self.lengths[a], self.lengths[b] = self.lengths[b], self.lengths[a]

    @torch.inference_mode()
    def copy(self, source: int, target: int) -> None:
        """Make ``target`` hold what ``source`` holds (for n > 1 completions)."""
        used = self.lengths[source]
        self.keys[:, target, :, :used] = self.keys[:, source, :, :used]
        self.values[:, target, :, :used] = self.values[:, source, :, :used]
        self.lengths[target] = used

    def truncate(self, slot: int, length: int) -> None:
        """Forget everything after the first ``length`` tokens of ``slot``."""
        self.lengths[slot] = min(self.lengths[slot], length)

    def _reserve(self, length: int) -> None:
        """Make every slot able to hold ``length`` tokens."""
        capacity = self.keys.shape[3]
        if length <= capacity:
            return
        capacity = min(self.max_len, max(length, 2 * capacity))
        for name in ("keys", "values"):
            old = getattr(self, name)
            new = old.new_zeros((*old.shape[:3], capacity, old.shape[4]))
            new[:, :, :, : old.shape[3]] = old
            setattr(self, name, new)

    # --- steps ----------------------------------------------------------------------

    @contextlib.contextmanager
    def adapters(self, names: Sequence[str | None]) -> Iterator[None]:
        """Run the next step with LoRA adapter ``names[i]`` for row ``i`` (None: the base).

        peft batches rows of different adapters in one forward (base matmul once, each
        adapter on its rows); its forward hooks are the only way to pass the names to
        the LoRA layers when the model's modules are called one by one, as here.
        """
        if not hasattr(self.model, "_enable_peft_forward_hooks"):
            yield
            return
        rows = [name or "__base__" for name in names]
        with self.model._enable_peft_forward_hooks(adapter_names=rows):
            yield

    def step(
        self,
        tokens: Sequence[int],
        adapters: Sequence[str | None],
        prompts: Sequence[tuple[int, Sequence[int], str | None]],
    ) -> torch.Tensor:
        """Decode ``tokens`` (slots ``0..k-1``) and prefill each ``(slot, ids, adapter)``;
        returns ``(k + len(prompts), V)``: the decode rows, then each prompt's last logits.

        Here the prompts run one by one (each is one forward pass over its tokens), then
        the decode step for the others.
        """
        rows = [self.prefill(slot, ids, adapter)[None] for slot, ids, adapter in prompts]
        if tokens:
            rows.insert(0, self.decode(tokens, adapters))
        return torch.cat(rows)

    @torch.inference_mode()
    def prefill(
        self, slot: int, token_ids: Sequence[int], adapter: str | None = None
    ) -> torch.Tensor:
        """Append ``token_ids`` to ``slot``; returns the logits after the last one ``(V,)``."""
        start = self.lengths[slot]
        count = len(token_ids)
        if start + count > self.max_len:
            raise LmforgeError(
                f"sequence of {start + count} tokens exceeds the serving context of "
                f"{self.max_len} tokens"
            )
        self._reserve(start + count)
        ids = torch.tensor([list(token_ids)], device=self.device)  # (1, T)
        positions = torch.arange(start, start + count, device=self.device)[None]  # (1, T)
        # Each new token sees the cached prefix and the new tokens up to itself.
        visible = torch.arange(start + count, device=self.device)  # (S,)
        mask = visible[None, :] <= positions[0, :, None]  # (T, S)
        with self.adapters([adapter]):
            hidden = self._forward(
                ids, positions, slots=slice(slot, slot + 1), write=(slot, start),
                # A fresh prompt is plain causal attention: no mask tensor needed.
                mask=None if start == 0 else mask[None, None], length=start + count,
            )  # fmt: skip
        self.lengths[slot] = start + count
        return self._project(self.lm_head, hidden[:, -1])[0]  # (V,)

    @torch.inference_mode()
    def decode(
        self, token_ids: Sequence[int], adapters: Sequence[str | None] | None = None
    ) -> torch.Tensor:
        """One new token for each of the sequences in slots ``0..B-1``; returns ``(B, V)``."""
        batch = len(token_ids)
        starts = self.lengths[:batch]
        if max(starts) + 1 > self.max_len:
            raise LmforgeError(f"a sequence reached the serving context of {self.max_len} tokens")
        self._reserve(max(starts) + 1)
        ids = torch.tensor(token_ids, device=self.device)[:, None]  # (B, 1)
        positions = torch.tensor(starts, device=self.device)[:, None]  # (B, 1)
        longest = max(starts) + 1
        by_row = self.batch_invariant and batch > 1
        # One new token per row sees its whole cache: masking is only for rows shorter
        # than the longest, when the rows attend together.
        mask = None
        if not by_row and min(starts) != max(starts):
            mask = torch.arange(longest, device=self.device)[None, :] <= positions  # (B, S)
            mask = mask[:, None, None]
        with self.adapters(adapters or [None] * batch):
            hidden = self._forward(
                ids, positions, slots=slice(0, batch), write=None, mask=mask, length=longest,
                row_lengths=[n + 1 for n in starts] if by_row else None,
            )  # fmt: skip
        for slot in range(batch):
            self.lengths[slot] += 1
        return self._project(self.lm_head, hidden[:, -1])  # (B, V)

    def _forward(
        self,
        ids: torch.Tensor,  # (B, T)
        positions: torch.Tensor,  # (B, T)
        slots: slice,
        write: tuple[int, int] | None,  # prefill: (slot, start); decode: None
        mask: torch.Tensor | None,  # (B, 1, T, S) bool; None: causal prefill or equal rows
        length: int,  # S: cache positions to attend over
        row_lengths: list[int] | None = None,  # decode row by row: each row's S
    ) -> torch.Tensor:
        """The final hidden states ``(B, T, C)``, writing the new keys and values.

        With ``row_lengths`` each decoding row attends over its own cache alone, rather
        than with the others over the longest behind a mask: the padded reduction gives
        other float bits, and an INT8 model, whose activations are rounded to a grid,
        turns such differences into other tokens (the quickstart model gave another
        answer to 46 of 185 prompts in batches of 16 than in batches of 8; row by row,
        none).
        """
        batch, count = ids.shape
        hidden = self.decoder.embed_tokens(ids)  # (B, T, C)
        cos, sin = self.decoder.rotary_emb(hidden, positions)
        rows = torch.arange(slots.start, slots.stop, device=self.device)
        cos, sin = cos[:, :, None], sin[:, :, None]  # (B, T, 1, D): one angle for every head
        # rotate_half(x) * sin == roll(x, half) * signed_sin, with the sign folded in once
        # per step instead of negating half of every layer's queries and keys.
        half = self.head_dim // 2
        signed_sin = torch.cat([-sin[..., :half], sin[..., half:]], dim=-1)
        # Decoding rows at one shared position (no mask) write the cache through a slice.
        shared = length - 1 if write is None and mask is None and row_lengths is None else None
        for index, layer in enumerate(self.decoder.layers):
            attention = layer.self_attn
            x = _rms_norm(layer.input_layernorm, hidden)
            if hasattr(attention, "qkv_proj"):  # fused by hub.smoothquant
                kv_width = self.kv_heads * self.head_dim
                sizes = [self.heads * self.head_dim, kv_width, kv_width]
                q, k, v = self._project(attention.qkv_proj, x).split(sizes, dim=-1)
                q = q.view(batch, count, self.heads, self.head_dim)
                k = k.view(batch, count, self.kv_heads, self.head_dim)
                v = v.view(batch, count, self.kv_heads, self.head_dim)
            else:
                q = attention.q_proj(x).view(batch, count, self.heads, self.head_dim)
                k = attention.k_proj(x).view(batch, count, self.kv_heads, self.head_dim)
                v = attention.v_proj(x).view(batch, count, self.kv_heads, self.head_dim)
            # Rotate queries and keys in one go: fewer small ops per layer at batch 1.
            qk = torch.cat([q, k], dim=2)  # (B, T, H + KVH, D)
            qk = torch.addcmul(qk * cos, qk.roll(half, dims=-1), signed_sin)
            q, k = qk[:, :, : self.heads].transpose(1, 2), qk[:, :, self.heads :].transpose(1, 2)
            keys, values = self.keys[index], self.values[index]  # (slots, KVH, max_len, D)
            if write is not None:
                slot, start = write
                keys[slot, :, start : start + count] = k[0]
                values[slot, :, start : start + count] = v.transpose(1, 2)[0]
            elif shared is not None:
                keys[slots, :, shared] = k[:, :, 0]
                values[slots, :, shared] = v[:, 0]
            else:
                keys[rows, :, positions[:, 0]] = k[:, :, 0]
                values[rows, :, positions[:, 0]] = v[:, 0]
            gqa = self.kv_heads != self.heads
            if row_lengths is None:
                out = F.scaled_dot_product_attention(
                    q,
                    keys[slots, :, :length],
                    values[slots, :, :length],
                    attn_mask=mask,
                    is_causal=mask is None and count > 1,
                    enable_gqa=gqa,
                )  # (B, H, T, D)
            else:
                out = torch.cat([
                    F.scaled_dot_product_attention(
                        q[row : row + 1], keys[row : row + 1, :, :n],
                        values[row : row + 1, :, :n], enable_gqa=gqa,
                    ) for row, n in enumerate(row_lengths)
                ])  # fmt: skip
            out = out.transpose(1, 2).reshape(batch, count, self.heads * self.head_dim)
            hidden = hidden + self._project(attention.o_proj, out)
            hidden = hidden + self._mlp(
                layer.mlp, _rms_norm(layer.post_attention_layernorm, hidden)
            )
        return _rms_norm(self.decoder.norm, hidden)

    def _mlp(self, mlp: Any, x: torch.Tensor) -> torch.Tensor:
        if not hasattr(mlp, "gate_up_proj"):
            return mlp(x)
        gate, up = self._project(mlp.gate_up_proj, x).chunk(2, dim=-1)  # fused by hub.smoothquant
        return self._project(mlp.down_proj, mlp.act_fn(gate) * up)


def _is_int8_linear(module: Any) -> bool:
    return (
        type(module) is DynamicInt8Linear
        and (module.version or 0) >= 4
        and module._packed_params.dtype == torch.qint8
        and not module._forward_hooks
        and not module._forward_pre_hooks
    )


def _direct_int8(linear: Any) -> Any:
    """``linear``'s forward (a dynamic INT8 linear from hub.smoothquant) without the
    ``nn.Module`` call.

    At batch 1 a call through ``nn.Module`` costs about 25 us, of which the op is 19 us;
    a decode step makes four of them per layer plus the LM head (measured on SmolLM2).
    """
    packed, reduce_range = linear._packed_params._packed_params, linear.reduce_range
    return lambda x: linear_rows(x, packed, reduce_range, linear.row_bias)


def _rms_norm(norm: Any, x: torch.Tensor) -> torch.Tensor:
    """The model's RMSNorm as one fused op (its own module when it is not a plain one)."""
    eps = getattr(norm, "variance_epsilon", None)
    if eps is None or x.dtype != torch.float32:
        return norm(x)
    return F.rms_norm(x, (x.shape[-1],), norm.weight, eps)
