"""Vocabulary pruning: keep the tokens a domain corpus uses and drop the rest.

A model's embedding matrix is often its largest tensor (MiniLM: 11.7M of 22.7M
parameters for 30,522 tokens), and a domain uses a few thousand of them. Pruning keeps
the tokens the corpus tokenizes to, the special tokens and the single characters (so
words outside the domain still split into known pieces), renumbers them in their old
order, slices the embedding rows (and a language-model head's) to match, and rewrites
the fast tokenizer's ``tokenizer.json`` with the new ids.

In-domain text tokenizes to the same tokens as before (tested, and checked on the
corpus before anything is written):

- WordPiece matches the longest piece in the vocabulary; every piece the corpus used
  is kept and no new piece appears, so the longest match is unchanged.
- byte-level BPE applies merges in rank order. A token is kept with the merges that
  build it from single bytes; a dropped merge never fired on the corpus, so it was
  never the lowest-ranked pair available, and dropping it changes no step.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from transformers import AutoTokenizer

from lmforge.compress.corpus import corpus_texts
from lmforge.compress.quantize import copy_extras
from lmforge.errors import LmforgeError
from lmforge.home import atomic_dir
from lmforge.hub import resolve
from lmforge.hub.load import load_model


def prune_vocabulary(source: Path, corpus: Path, out: Path) -> int:
    """Write a copy of the model in ``source`` keeping only the tokens ``corpus`` uses.

    Returns:
        The number of tokens kept.

    Raises:
        LmforgeError: the tokenizer is not a fast WordPiece or BPE tokenizer, or the
            pruned tokenizer would tokenize the corpus differently.
    """

    model, tokenizer = load_model(resolve(str(source)))
    texts = corpus_texts(corpus, tokenizer)
    encoded = [list(tokenizer(text)["input_ids"]) for text in texts]
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    kind = spec["model"]["type"]
    if kind not in {"WordPiece", "BPE"}:
        raise LmforgeError(f"prune-vocab handles WordPiece and BPE tokenizers; {source} has a "
                           f"{kind} tokenizer. Leave prune-vocab out of the methods.")  # fmt: skip
    used = {token for ids in encoded for token in ids}
    keep = _kept_ids(spec, used, tokenizer)
    old_to_new = {old: new for new, old in enumerate(keep)}
    with atomic_dir(out) as tmp:
        tokenizer.save_pretrained(tmp)
        (tmp / "tokenizer.json").write_text(
            json.dumps(_pruned_spec(spec, keep, old_to_new), ensure_ascii=False), encoding="utf-8"
        )
        pruned_tokenizer = _reload_tokenizer(tmp)
        _check_same_tokens(texts, encoded, pruned_tokenizer, old_to_new)
        _prune_model(model, keep, old_to_new)
        model.save_pretrained(tmp)
        pruned_tokenizer.save_pretrained(tmp)
        copy_extras(source, tmp)
    return len(keep)


def _kept_ids(spec: dict[str, Any], used: set[int], tokenizer: Any) -> list[int]:
    vocab: dict[str, int] = spec["model"]["vocab"]
    keep = set(used) | {int(t["id"]) for t in spec.get("added_tokens", [])}
    keep |= set(tokenizer.all_special_ids)
    for token, index in vocab.items():
        bare = token[2:] if token.startswith("##") else token
        if len(bare) == 1 and (spec["model"]["type"] == "BPE" or bare.isascii()):
            keep.add(index)  # single characters (BPE: the 256 byte symbols)
    if spec["model"]["type"] == "BPE":
        keep |= _merge_closure(spec, keep)
    return sorted(keep)


def _merge_closure(spec: dict[str, Any], keep: set[int]) -> set[int]:
    """Every token some kept token is merged from, down to single bytes."""
    vocab: dict[str, int] = spec["model"]["vocab"]
    token_of = {index: token for token, index in vocab.items()}
    parts: dict[str, tuple[str, str]] = {}
    for merge in spec["model"]["merges"]:
        a, b = merge if isinstance(merge, list) else merge.split(" ", 1)
        parts.setdefault(a + b, (a, b))
    closure: set[int] = set()
    stack = [token_of[i] for i in keep if i in token_of]
    while stack:
        token = stack.pop()
        if token not in vocab or vocab[token] in closure:
            continue
        closure.add(vocab[token])
        stack.extend(parts.get(token, ()))
    return closure


def _pruned_spec(
    spec: dict[str, Any], keep: list[int], old_to_new: dict[int, int]
) -> dict[str, Any]:
    spec = json.loads(json.dumps(spec))  # a deep copy
    model = spec["model"]
    token_of = {index: token for token, index in model["vocab"].items()}
    model["vocab"] = {token_of[old]: new for new, old in enumerate(keep) if old in token_of}
    if model["type"] == "BPE":
        kept = set(model["vocab"])
        merges = []
        for merge in model["merges"]:
            a, b = merge if isinstance(merge, list) else merge.split(" ", 1)
            if a in kept and b in kept and a + b in kept:
                merges.append(merge)
        model["merges"] = merges
    for added in spec.get("added_tokens", []):
        added["id"] = old_to_new[int(added["id"])]
    processor = spec.get("post_processor") or {}
    for special in (processor.get("special_tokens") or {}).values():
        special["ids"] = [old_to_new[int(i)] for i in special["ids"]]
    return spec


def _reload_tokenizer(folder: Path) -> Any:
    for name in ("vocab.txt", "vocab.json", "merges.txt"):  # slow-tokenizer files: stale now
        (folder / name).unlink(missing_ok=True)
    return AutoTokenizer.from_pretrained(folder)


def _check_same_tokens(
    texts: list[str], encoded: list[list[int]], tokenizer: Any, old_to_new: dict[int, int]
) -> None:
    for text, ids in zip(texts, encoded, strict=True):
        expected = [old_to_new[i] for i in ids]
        if list(tokenizer(text)["input_ids"]) != expected:
            raise LmforgeError(
                f"prune-vocab: the pruned tokenizer splits this corpus text differently "
                f"({text[:60]!r}...); this tokenizer cannot be pruned safely. Leave "
                "prune-vocab out of --method."
            )


@torch.no_grad()
def _prune_model(model: Any, keep: list[int], old_to_new: dict[int, int]) -> None:
    rows = torch.tensor(keep)
    embedding = model.get_input_embeddings()
    head = model.get_output_embeddings()
    tied = head is not None and head.weight is embedding.weight
    padding = embedding.padding_idx
    new_padding = old_to_new.get(padding) if padding is not None else None
    pruned = torch.nn.Embedding(len(keep), embedding.embedding_dim, padding_idx=new_padding)
    pruned.weight.copy_(embedding.weight[rows])
    model.set_input_embeddings(pruned)
    if head is not None:
        new_head = torch.nn.Linear(head.in_features, len(keep), bias=head.bias is not None)
        if tied:
            new_head.weight = pruned.weight
        else:
            new_head.weight.copy_(head.weight[rows])
        if head.bias is not None:
            new_head.bias.copy_(head.bias[rows])
        model.set_output_embeddings(new_head)
    config = model.config
    config.vocab_size = len(keep)
    for name in ("pad_token_id", "bos_token_id", "eos_token_id", "sep_token_id",
                 "decoder_start_token_id"):  # fmt: skip
        for holder in (config, getattr(model, "generation_config", None)):
            value = getattr(holder, name, None) if holder is not None else None
            if isinstance(value, int):
                setattr(holder, name, old_to_new.get(value))
            elif isinstance(value, list):
                setattr(holder, name, [old_to_new[v] for v in value if v in old_to_new])
