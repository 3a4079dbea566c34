"""Write a LLaMA-architecture causal LM as a GGUF file that llama.cpp runs.

What llama.cpp's own ``convert_hf_to_gguf.py`` does for LLaMA, with the ``gguf``
package and nothing else:

- hyper-parameters under ``llama.*``; the tokenizer as ``gpt2`` BPE (tokens, token
  types, merges, special ids, chat template), with the pre-tokenizer llama.cpp must use
  recognised the way llama.cpp recognises it: by hashing the token ids of one test
  string (``PRE_TOKENIZERS``);
- tensors under llama.cpp's names; q/k projection rows permuted, because llama.cpp
  rotates interleaved pairs where Hugging Face rotates halves;
- norms in f32, matrices in the requested type (``f32``, ``f16``, ``q8_0``, ``q4_0``).

The file is written next to the target and renamed into place, so a failed export
never leaves a partial file there.
"""

from __future__ import annotations

import tempfile
from hashlib import sha256
from pathlib import Path
from typing import Any

import gguf
import numpy as np

from lmforge.errors import LmforgeError
from lmforge.home import atomic_file

SUPPORTED_ARCHITECTURES = ("llama",)
QUANTS = ("f32", "f16", "q8_0", "q4_1", "q4_0", "q4_0_m")
# q4_0_m: q4_0 blocks, except the tensors a 4-bit model is most sensitive to, which get
# q4_1's per-block offset: every attn_v and ffn_down (the tensors llama.cpp's _M mixes
# give more bits) and the first two and last layers whole. On SmolLM2: 79.9 MB
# (-85.1%) at +9.6% perplexity, against q4_0's 77.6 MB at +25.2% (docs/compress.md).
_SENSITIVE = ("attn_v", "ffn_down")

# llama.cpp's pre-tokenizer names, keyed by the sha256 of str(tokenizer.encode(_CHECK));
# from llama.cpp's conversion/base.py (get_vocab_base_pre), the BPE families that ship
# LLaMA-architecture models.
PRE_TOKENIZERS = {
    "855059429035d75a914d1eda9f10a876752e281a054a7a3d421ef0533e5b6249": "smollm",
    "0ef9807a4087ebef797fc749390439009c3b9eda9ad1a097abbe738f486c01e5": "llama-bpe",
    "3ce83efda5659b07b1ad37ca97ca5797ea4285d9b9ab0dc679e4a720c9da7454": "gpt-2",
    "e636dc30a262dcc0d8c323492e32ae2b70728f4df7dfe9737d9f920a282b8aea": "qwen2",
}
_CHECK = (
    "\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u200d🌫️ (multiple emojis "
    "concatenated) ✅ 🦙🦙 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 "
    "កាន់តែពិសេសអាច😁 ?我想在apple工作1314151天～ ------======= нещо на Български "  # noqa: RUF001
    "''''''```````\"\"\"\"......!!!!!!?????? I've been 'told he's there, 'RE you sure? "
    "'M not sure I'll make it, 'D you like some tea? We'Ve a'lL"
)


def export_gguf(model: Any, tokenizer: Any, path: Path, quant: str = "q8_0") -> Path:
    """Write ``model`` (a transformers LLaMA causal LM, adapters merged) to ``path``.

    Raises:
        LmforgeError: an unsupported architecture, quantization or tokenizer.
    """
    config = model.config
    if config.model_type not in SUPPORTED_ARCHITECTURES:
        raise LmforgeError(
            f"GGUF export supports the architectures {', '.join(SUPPORTED_ARCHITECTURES)}; "
            f"this model is '{config.model_type}'. Export it in format onnx or hf."
        )
    if quant not in QUANTS:
        raise LmforgeError(f"quant: must be one of {', '.join(QUANTS)}, not '{quant}'")
    rope = _rope_parameters(config)
    if rope.get("rope_type", "default") != "default":
        raise LmforgeError(
            f"GGUF export handles plain rotary embeddings; this model uses rope_type "
            f"'{rope['rope_type']}'."
        )
    path = Path(path)
    with atomic_file(path, suffix=".tmp") as temporary:
        writer = gguf.GGUFWriter(str(temporary), "llama")
        _write_hyperparameters(writer, config, rope, quant, name=path.stem)
        _write_vocabulary(writer, tokenizer, config.vocab_size)
        _write_tensors(writer, model, quant)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    return path


def _rope_parameters(config: Any) -> dict[str, Any]:
    """transformers 5 keeps ``rope_theta`` in ``rope_parameters``; older configs beside it."""
    parameters = dict(getattr(config, "rope_parameters", None) or {})
    if "rope_theta" not in parameters:
        parameters["rope_theta"] = getattr(config, "rope_theta", 10000.0)
    return parameters


def _write_hyperparameters(
    writer: Any, config: Any, rope: dict[str, Any], quant: str, name: str
) -> None:
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    file_types = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
                  "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
                  "q4_1": gguf.LlamaFileType.MOSTLY_Q4_1,
                  "q4_0": gguf.LlamaFileType.MOSTLY_Q4_0,
                  "q4_0_m": gguf.LlamaFileType.MOSTLY_Q4_0}  # fmt: skip
    writer.add_name(name)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(heads)
    writer.add_head_count_kv(getattr(config, "num_key_value_heads", None) or heads)
    writer.add_rope_freq_base(float(rope["rope_theta"]))
    writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
    writer.add_vocab_size(config.vocab_size)
    writer.add_rope_dimension_count(head_dim)
    writer.add_file_type(file_types[quant])
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)


def _write_vocabulary(writer: Any, tokenizer: Any, vocab_size: int) -> None:
    digest = sha256(str(tokenizer.encode(_CHECK)).encode()).hexdigest()
    if digest not in PRE_TOKENIZERS:
        raise LmforgeError(
            "GGUF export: llama.cpp does not know this tokenizer's pre-tokenizer (known: "
            f"{', '.join(sorted(set(PRE_TOKENIZERS.values())))}), so llama.cpp would split "
            "text differently from the model's own tokenizer."
        )
    vocab = tokenizer.get_vocab()
    by_id = {index: token for token, index in vocab.items()}
    added = tokenizer.added_tokens_decoder
    tokens, types = [], []
    for index in range(vocab_size):
        if index not in by_id:
            tokens.append(f"[PAD{index}]")
            types.append(gguf.TokenType.UNUSED)
        elif index in added:
            tokens.append(by_id[index])
            special = added[index].special
            types.append(gguf.TokenType.CONTROL if special else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(by_id[index])
            types.append(gguf.TokenType.NORMAL)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(PRE_TOKENIZERS[digest])
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    # Merges, special token ids and add_bos come from the saved tokenizer files.
    with tempfile.TemporaryDirectory() as saved:
        tokenizer.save_pretrained(saved)
        special = gguf.SpecialVocab(saved, load_merges=True, n_vocab=vocab_size)
        if not special.merges:
            raise LmforgeError("GGUF export needs a BPE tokenizer with merges (tokenizer.json)")
        if special.chat_template is None and getattr(tokenizer, "chat_template", None):
            special.chat_template = tokenizer.chat_template
        special.add_to_gguf(writer)


def _write_tensors(writer: Any, model: Any, quant: str) -> None:
    config = model.config
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)
    tied = bool(getattr(config, "tie_word_embeddings", False))
    for hf_name, tensor in model.state_dict().items():
        if tied and hf_name == "lm_head.weight":
            continue  # llama.cpp reads the tied output matrix from token_embd
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise LmforgeError(f"GGUF export: no llama.cpp name for tensor '{hf_name}'")
        data = tensor.detach().float().cpu().numpy()
        if hf_name.endswith("q_proj.weight"):
            data = _permute(data, heads)
        elif hf_name.endswith("k_proj.weight"):
            data = _permute(data, kv_heads)
        _add_tensor(writer, name, data, _tensor_quant(name, quant, config.num_hidden_layers))


def _tensor_quant(name: str, quant: str, layers: int) -> str:
    """The block type of one tensor: the file's, except in the ``q4_0_m`` mix."""
    if quant != "q4_0_m":
        return quant
    block = name.split(".")[1] if name.startswith("blk.") else None
    edge = block is not None and int(block) in {0, 1, layers - 1}
    return "q4_1" if edge or any(part in name for part in _SENSITIVE) else "q4_0"


def _permute(weight: np.ndarray, heads: int) -> np.ndarray:
    """Reorder each head's rows from Hugging Face's halves to llama.cpp's pairs."""
    rows = weight.shape[0]
    return (
        weight.reshape(heads, 2, rows // heads // 2, *weight.shape[1:])
        .swapaxes(1, 2)
        .reshape(weight.shape)
    )


def _add_tensor(writer: Any, name: str, data: np.ndarray, quant: str) -> None:
    if data.ndim == 1 or quant == "f32":
        writer.add_tensor(name, data.astype(np.float32))
        return
    qtype = {"q8_0": gguf.GGMLQuantizationType.Q8_0, "q4_1": gguf.GGMLQuantizationType.Q4_1,
             "q4_0": gguf.GGMLQuantizationType.Q4_0}  # fmt: skip
    block = gguf.GGML_QUANT_SIZES[qtype["q8_0"]][0]  # 32 values for each of these types
    if quant == "f16" or data.shape[-1] % block:  # rows that do not fill blocks stay f16
        writer.add_tensor(name, data.astype(np.float16))
        return
    packed = gguf.quants.quantize(data, qtype[quant])
    writer.add_tensor(name, packed, raw_dtype=qtype[quant])
