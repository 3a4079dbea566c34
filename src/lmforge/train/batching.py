"""Batch order and packing: seeded, length-grouped, identical on every process."""

from __future__ import annotations

import random
from collections.abc import Sequence

from lmforge.tasks.base import IGNORE_INDEX, Example

MEGA_BATCHES = 50  # length grouping sorts within windows of this many batches


def batch_order(
    lengths: Sequence[int],
    batch_size: int,
    *,
    seed: int,
    epoch: int,
    group_by_length: bool = True,
    drop_last: bool = False,
) -> list[list[int]]:
    """Example indices for every batch of one epoch.

    The order depends only on (seed, epoch), so every process and every resumed run
    sees the same batches. With ``group_by_length`` examples are shuffled, then sorted
    by length within windows of ``MEGA_BATCHES`` batches, and the batches shuffled
    again: similar lengths share a batch (little padding) while the order stays random.
    """
    rng = random.Random(seed * 1_000_003 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    if group_by_length:
        window = batch_size * MEGA_BATCHES
        order = [
            index
            for start in range(0, len(order), window)
            for index in sorted(order[start : start + window], key=lambda i: -lengths[i])
        ]
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if drop_last and batches and len(batches[-1]) < batch_size:
        batches.pop()
    if group_by_length:
        rng.shuffle(batches)
    return batches


def pack_examples(examples: Sequence[Example], max_length: int) -> list[Example]:
    """Pack token examples into sequences of at most ``max_length`` (first-fit by length).

    Each packed sequence carries ``position_ids`` restarting at 0 for every example it
    holds; the model turns those into a block-diagonal causal mask, so examples never
    attend across a boundary. The first token of each example gets no loss, since no
    token of the same example precedes it.
    """
    bins: list[list[Example]] = []
    space: list[int] = []
    for example in sorted(examples, key=lambda ex: -len(ex["input_ids"])):
        size = len(example["input_ids"])
        for index, free in enumerate(space):
            if size <= free:
                bins[index].append(example)
                space[index] -= size
                break
        else:
            bins.append([example])
            space.append(max_length - size)
    packed = []
    for group in bins:
        input_ids: list[int] = []
        labels: list[int] = []
        positions: list[int] = []
        for example in group:
            input_ids += example["input_ids"]
            labels += [IGNORE_INDEX, *example["labels"][1:]]
            positions += range(len(example["input_ids"]))
        packed.append({"input_ids": input_ids, "labels": labels, "position_ids": positions})
    return packed
