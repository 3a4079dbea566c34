"""Task internals a user would notice: which tokens train, packing, masking, chunking."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lmforge.hub import load_causal_lm, load_tokenizer, resolve
from lmforge.tasks import IGNORE_INDEX, EncodeOptions, get_task
from lmforge.tasks.causal_lm import collate_lm, lm_loss
from lmforge.tasks.mlm import mask_tokens
from lmforge.tasks.sft import encode_conversation
from lmforge.train.batching import batch_order, pack_examples


@pytest.fixture(scope="module")
def smollm_tokenizer(tiny_causal_lm: Path):  # type: ignore[no-untyped-def]
    return load_tokenizer(resolve(str(tiny_causal_lm)))


def test_sft_trains_on_assistant_tokens_only_token_by_token(smollm_tokenizer) -> None:  # type: ignore[no-untyped-def]
    messages = [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Bye"},
        {"role": "assistant", "content": "Goodbye."},
    ]
    # The ChatML conversation, piece by piece: (text, does the model learn it?)
    pieces = [
        ("<|im_start|>system\nBe kind.<|im_end|>\n", False),
        ("<|im_start|>user\nHi<|im_end|>\n", False),
        ("<|im_start|>assistant\n", False),
        ("Hello!<|im_end|>\n", True),
        ("<|im_start|>user\nBye<|im_end|>\n", False),
        ("<|im_start|>assistant\n", False),
        ("Goodbye.<|im_end|>\n", True),
    ]
    expected_ids: list[int] = []
    expected_labels: list[int] = []
    for text, trained in pieces:
        ids = smollm_tokenizer(text, add_special_tokens=False)["input_ids"]
        expected_ids += ids
        expected_labels += ids if trained else [IGNORE_INDEX] * len(ids)

    example = encode_conversation(smollm_tokenizer, messages)
    assert example["input_ids"] == expected_ids
    assert example["labels"] == expected_labels
    learned = [t for t in example["labels"] if t != IGNORE_INDEX]
    assert smollm_tokenizer.decode(learned) == "Hello!<|im_end|>\nGoodbye.<|im_end|>\n"

    everything = encode_conversation(smollm_tokenizer, messages, train_on_prompt=True)
    assert everything["labels"] == expected_ids


def test_single_turn_chat_trains_only_its_answer(smollm_tokenizer) -> None:  # type: ignore[no-untyped-def]
    task = get_task("sft")
    record = {"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]}
    examples, stats = task.encode([record], smollm_tokenizer, EncodeOptions(max_length=128))
    assert stats.examples == 1
    labels = [t for t in examples[0]["labels"] if t != IGNORE_INDEX]
    assert smollm_tokenizer.decode(labels) == "A<|im_end|>\n"


def test_packed_examples_match_the_examples_alone(tiny_causal_lm: Path) -> None:
    model, tokenizer = load_causal_lm(resolve(str(tiny_causal_lm)))
    first = {"input_ids": [5, 60, 700, 8000, 9], "labels": [5, 60, 700, 8000, 9]}
    second = {"input_ids": [11, 12, 13, 14, 15, 16, 17], "labels": [-100, -100, 13, 14, 15, 16, 17]}
    (packed,) = pack_examples([first, second], max_length=16)
    assert packed["position_ids"] == [0, 1, 2, 3, 4, 5, 6, 0, 1, 2, 3, 4]  # longest first

    with torch.no_grad():
        together = model(
            input_ids=torch.tensor([packed["input_ids"]]),
            position_ids=torch.tensor([packed["position_ids"]]),
            use_cache=False,
        ).logits[0]  # (12, V)
        alone_second = model(input_ids=torch.tensor([second["input_ids"]])).logits[0]
        alone_first = model(input_ids=torch.tensor([first["input_ids"]])).logits[0]
    assert (together[:7] - alone_second).abs().max() < 1e-5
    assert (together[7:] - alone_first).abs().max() < 1e-5

    with torch.no_grad():
        packed_loss = lm_loss(model, collate_lm([packed], tokenizer.pad_token_id))
        separate = lm_loss(model, collate_lm([first], 0)) + lm_loss(model, collate_lm([second], 0))
    assert abs(float(packed_loss) - float(separate)) < 1e-3


def test_mlm_masks_15_percent_as_80_10_10() -> None:
    class Tokenizer:
        mask_token_id = 103

        def __len__(self) -> int:
            return 30522

    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(1000, 30000, (64, 512), generator=generator)
    special = torch.zeros_like(input_ids, dtype=torch.bool)
    special[:, 0] = True  # [CLS] is never a target
    inputs, labels = mask_tokens(input_ids, special, Tokenizer(), generator)
    chosen = labels != IGNORE_INDEX
    assert not chosen[:, 0].any()
    assert abs(chosen.float().mean().item() - 0.15) < 0.01
    masked = (inputs == 103) & chosen
    kept = (inputs == input_ids) & chosen
    randomized = chosen & ~masked & ~kept
    total = chosen.sum().item()
    assert abs(masked.sum().item() / total - 0.8) < 0.02
    assert abs(kept.sum().item() / total - 0.1) < 0.02
    assert abs(randomized.sum().item() / total - 0.1) < 0.02
    assert torch.equal(labels[chosen], input_ids[chosen])


def test_clm_concatenates_documents_and_cuts_blocks(smollm_tokenizer) -> None:  # type: ignore[no-untyped-def]
    task = get_task("clm")
    records = [{"text": "alpha beta gamma " * 10}, {"text": "delta " * 7}]
    blocks, _ = task.encode(records, smollm_tokenizer, EncodeOptions(max_length=16))
    stream = [t for r in records for t in smollm_tokenizer(r["text"])["input_ids"] + [2]]
    assert [t for b in blocks for t in b["input_ids"]] == stream
    assert all(len(b["input_ids"]) == 16 for b in blocks[:-1])
    packed, _ = task.encode(records, smollm_tokenizer, EncodeOptions(max_length=16, packing=True))
    assert all(b["input_ids"][-1] == 2 for b in packed if len(b["input_ids"]) < 16)


def test_batch_order_is_seeded_complete_and_length_grouped() -> None:
    lengths = [(i * 37) % 100 + 1 for i in range(400)]
    first = batch_order(lengths, 8, seed=1, epoch=0)
    assert first == batch_order(lengths, 8, seed=1, epoch=0)
    assert first != batch_order(lengths, 8, seed=1, epoch=1)
    assert sorted(i for batch in first for i in batch) == list(range(400))
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in first)
    plain = batch_order(lengths, 8, seed=1, epoch=0, group_by_length=False)
    plain_spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in plain)
    assert spread < plain_spread / 5


def test_from_scratch_keeps_the_architecture_but_not_the_weights(tiny_encoder: Path) -> None:
    task = get_task("classify")
    labels = ["negative", "positive"]
    trained = task.build_model(str(tiny_encoder), labels=labels, dtype=torch.float32)
    fresh = task.build_model(
        str(tiny_encoder), labels=labels, dtype=torch.float32, pretrained=False
    )
    trained_weights, fresh_weights = trained.state_dict(), fresh.state_dict()
    assert trained_weights.keys() == fresh_weights.keys()
    name = "bert.encoder.layer.0.attention.self.query.weight"
    assert trained_weights[name].shape == fresh_weights[name].shape
    assert not torch.equal(trained_weights[name], fresh_weights[name])
