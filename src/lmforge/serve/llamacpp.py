"""The ``llamacpp`` backend: the engine's continuous batching over llama.cpp.

``lmforge serve model.gguf`` runs the same ``Engine`` as the torch backend (scheduling,
prefix reuse, sampling, JSON mode, stop strings, logprobs), so the OpenAI API, sessions
and guardrails behave the same. Only the runner differs: ``LlamaCppRunner`` keeps each
cache slot as a llama.cpp sequence and runs every decode step as one ``llama_decode``
over a batch with one token per running sequence, through llama-cpp-python's bindings
of llama.cpp's C API.

The KV cache is allocated up front: one stream of ``max_len`` cells per slot (running
plus kept for prefix reuse), f16 keys and values. ``--max-model-len`` bounds it; the
backend defaults to ``DEFAULT_MAX_LEN`` tokens per sequence.
"""

from __future__ import annotations

import contextlib
import ctypes
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from lmforge.errors import LmforgeError
from lmforge.hardware import native_threads
from lmforge.hub import load_tokenizer
from lmforge.hub.llamacpp_check import ensure_llama_cpp_runs
from lmforge.hub.load import import_llama_cpp
from lmforge.serve.engine import Engine

DEFAULT_MAX_LEN = 2048
BATCH_TOKENS = 2048  # tokens per llama_decode call (llama.cpp's n_batch, as llama-server)


class LlamaCppModel:
    """A GGUF file loaded by llama.cpp, with what the engine reads from a model
    (``config.max_position_embeddings``, ``generation_config.eos_token_id``)."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        lc = import_llama_cpp()
        lc.llama_backend_init()
        lc.llama_log_set(_SILENT, ctypes.c_void_p())  # llama.cpp logs every load to stderr
        self._free = lc.llama_model_free  # kept: at interpreter exit imports fail
        self.path = Path(path)
        self.threads = threads or native_threads()
        self.handle = lc.llama_model_load_from_file(
            str(self.path).encode(), lc.llama_model_default_params()
        )
        if not self.handle:
            raise LmforgeError(
                f"llama.cpp cannot load {self.path}: not a valid GGUF model (truncated or "
                "corrupted?); export it again with `lmforge export REF --format gguf`."
            )
        vocab = lc.llama_model_get_vocab(self.handle)
        self.vocab_size = lc.llama_vocab_n_tokens(vocab)
        ends = {lc.llama_vocab_eos(vocab), lc.llama_vocab_eot(vocab)}
        self.config = SimpleNamespace(
            max_position_embeddings=lc.llama_model_n_ctx_train(self.handle), model_type="gguf"
        )
        self.generation_config = SimpleNamespace(eos_token_id=sorted(t for t in ends if t >= 0))

    def __del__(self) -> None:
        if getattr(self, "handle", None):
            self._free(self.handle)
            self.handle = None


@ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)
def _SILENT(level: int, text: bytes, data: Any) -> None:
    pass


class LlamaCppRunner:
    """The ``SlotRunner`` interface (prefill, decode, swap, copy, truncate) over llama.cpp.

    A slot maps to a llama.cpp sequence id; ``swap`` exchanges the mapping, so moving a
    sequence between slots copies nothing. ``copy`` duplicates a sequence's cache.
    """

    batches_prompts = True  # new prompts join the decode step's llama_decode

    def __init__(self, model: LlamaCppModel, slots: int, max_len: int) -> None:
        lc = self.lc = import_llama_cpp()
        self.model, self.slots, self.max_len = model, slots, max_len
        params = lc.llama_context_default_params()
        params.n_ctx = slots * max_len  # one stream of max_len cells per sequence
        params.n_seq_max = slots
        params.kv_unified = False  # each sequence attends over its own cells only
        params.n_batch = max(BATCH_TOKENS, slots)  # llama.cpp splits it in n_ubatch pieces
        params.n_threads = params.n_threads_batch = model.threads
        params.no_perf = True
        self.ctx = lc.llama_init_from_model(model.handle, params)
        if not self.ctx:
            raise LmforgeError(
                f"llama.cpp could not allocate a cache of {slots} sequences x {max_len} "
                "tokens; lower --max-model-len or --max-batch"
            )
        self._free_batch, self._free_context = lc.llama_batch_free, lc.llama_free
        self.memory = lc.llama_get_memory(self.ctx)
        self.batch = lc.llama_batch_init(params.n_batch, 0, 1)
        self.capacity = params.n_batch
        self.vocab_size = model.vocab_size
        self.sequence = list(range(slots))  # slot -> llama.cpp sequence id
        self.lengths = [0] * slots

    def __del__(self) -> None:
        if getattr(self, "ctx", None):
            self._free_batch(self.batch)
            self._free_context(self.ctx)
            self.ctx = None

    # --- cache bookkeeping ----------------------------------------------------------

    def swap(self, a: int, b: int) -> None:
        self.sequence[a], self.sequence[b] = self.sequence[b], self.sequence[a]
        self.lengths[a], self.lengths[b] = self.lengths[b], self.lengths[a]

    def copy(self, source: int, target: int) -> None:
        self.lc.llama_memory_seq_rm(self.memory, self.sequence[target], -1, -1)
        self.lc.llama_memory_seq_cp(
            self.memory, self.sequence[source], self.sequence[target], -1, -1
        )
        self.lengths[target] = self.lengths[source]

    def truncate(self, slot: int, length: int) -> None:
        if length < self.lengths[slot]:
            self.lc.llama_memory_seq_rm(self.memory, self.sequence[slot], length, -1)
            self.lengths[slot] = length

    @contextlib.contextmanager
    def adapters(self, names: Sequence[str | None]) -> Iterator[None]:
        if any(names):
            raise LmforgeError("the llamacpp backend serves no LoRA adapters; merge them first")
        yield

    # --- steps ----------------------------------------------------------------------

    def step(
        self,
        tokens: Sequence[int],
        adapters: Sequence[str | None],
        prompts: Sequence[tuple[int, Sequence[int], str | None]],
    ) -> torch.Tensor:
        """Decode ``tokens`` (slots ``0..k-1``) and prefill each ``(slot, ids, adapter)``
        in one ``llama_decode`` (as llama-server batches prompts with decode tokens);
        returns ``(k + len(prompts), V)``: the decode rows, then each prompt's last logits.
        """
        with self.adapters([*adapters, *(adapter for _, _, adapter in prompts)]):
            entries = [(token, self.lengths[slot], slot, True) for slot, token in enumerate(tokens)]
            for slot, ids, _ in prompts:
                start = self.lengths[slot]
                if start + len(ids) > self.max_len:
                    raise LmforgeError(
                        f"sequence of {start + len(ids)} tokens exceeds the serving context "
                        f"of {self.max_len} tokens"
                    )
                last = len(ids) - 1
                entries += [(t, start + i, slot, i == last) for i, t in enumerate(ids)]
            if any(position >= self.max_len for _, position, _, _ in entries):
                raise LmforgeError(
                    f"a sequence reached the serving context of {self.max_len} tokens"
                )
            rows = []
            for offset in range(0, len(entries), self.capacity):  # llama.cpp's n_batch
                chunk = entries[offset : offset + self.capacity]
                self._decode_entries(chunk)
                outputs = sum(wanted for *_, wanted in chunk)
                if outputs:
                    rows.append(self._logits(outputs))
            for slot in range(len(tokens)):
                self.lengths[slot] += 1
            for slot, ids, _ in prompts:
                self.lengths[slot] += len(ids)
            return torch.cat(rows)

    def prefill(
        self, slot: int, token_ids: Sequence[int], adapter: str | None = None
    ) -> torch.Tensor:
        """Append ``token_ids`` to ``slot``; returns the logits after the last one ``(V,)``."""
        return self.step([], [], [(slot, token_ids, adapter)])[0]

    def decode(
        self, token_ids: Sequence[int], adapters: Sequence[str | None] | None = None
    ) -> torch.Tensor:
        """One new token for each of the sequences in slots ``0..B-1``; returns ``(B, V)``."""
        return self.step(token_ids, adapters or [None] * len(token_ids), [])

    def _decode_entries(self, entries: Sequence[tuple[int, int, int, bool]]) -> None:
        """One ``llama_decode`` over ``(token, position, slot, wants_logits)`` entries."""
        count = len(entries)
        batch = self.batch
        batch.n_tokens = count
        tokens, positions, slots, wanted = zip(*entries, strict=True)
        np.ctypeslib.as_array(batch.token, shape=(count,))[:] = tokens
        np.ctypeslib.as_array(batch.pos, shape=(count,))[:] = positions
        np.ctypeslib.as_array(batch.n_seq_id, shape=(count,))[:] = 1
        np.ctypeslib.as_array(batch.logits, shape=(count,))[:] = wanted
        for index, slot in enumerate(slots):
            batch.seq_id[index][0] = self.sequence[slot]
        status = self.lc.llama_decode(self.ctx, batch)
        if status != 0:
            raise LmforgeError(f"llama.cpp could not decode the batch (status {status})")

    def _logits(self, rows: int) -> torch.Tensor:
        pointer = self.lc.llama_get_logits(self.ctx)
        array = np.ctypeslib.as_array(pointer, shape=(rows, self.vocab_size))
        return torch.from_numpy(array.copy())  # (rows, V): llama.cpp reuses its buffer


def llamacpp_engine(base: Any, adapters: dict[str, Any], config: Any) -> Engine:
    """The llamacpp backend: the engine over the GGUF file ``base`` in llama.cpp (no
    adapters: ``ServingBackend.check`` refused them)."""
    model = LlamaCppModel(base.path)
    context = model.config.max_position_embeddings
    return Engine(
        model, load_tokenizer(base), max_batch=config.max_batch, max_queue=config.max_queue,
        max_len=min(config.max_model_len or DEFAULT_MAX_LEN, context),
        runner_class=LlamaCppRunner, niceness=config.compute_niceness,
    )  # fmt: skip


def preflight(base: Any, *, adapters: bool, quantize: str) -> None:
    """Fail before anything loads: llama-cpp-python not installed (saying how), or a
    build this CPU cannot run (``hub/llamacpp_check.py``)."""
    import_llama_cpp()
    ensure_llama_cpp_runs(base.path)
