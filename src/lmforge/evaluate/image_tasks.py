"""The code of the built-in image evaluation tasks (registered in ``lmforge.evaluate.tasks``):
text-image retrieval and zero-shot classification with a dual encoder (CLIP).

Both embed every record's image once; retrieval ranks each caption against every image of
the file and each image against every caption (pair i is caption i with image i), zero-shot
compares each image with one prompt embedding per label.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lmforge.data.images import open_image
from lmforge.hub.clip import (
    DEFAULT_LABEL_TEMPLATES,
    embed_images,
    embed_texts,
    load_clip,
    zero_shot,
)
from lmforge.progress import ProgressFn
from lmforge.stats import retrieval_ranks


def _images(records: list[dict[str, Any]], progress: ProgressFn | None) -> list[Any]:
    images = []
    for index, record in enumerate(records):
        images.append(open_image(Path(record["image"])))
        if progress is not None:
            progress(index + 1, len(records), "images read")
    return images


def retrieval_rows(
    ref: str, records: list[dict[str, Any]], progress: ProgressFn | None
) -> list[dict[str, Any]]:
    """Each pair's 1-based ranks both ways, exact and by caption ("attribute match")."""
    model, processor = load_clip(ref)
    image_vectors = embed_images(model, processor, _images(records, progress))  # (N, D)
    captions = [record["text"] for record in records]
    text_vectors = embed_texts(model, processor, captions)  # (N, D)
    caption_ids = {caption: index for index, caption in enumerate(dict.fromkeys(captions))}
    ranks = retrieval_ranks(text_vectors @ image_vectors.T,
                            np.array([caption_ids[c] for c in captions]))  # fmt: skip
    rows = []
    for index, record in enumerate(records):
        row = {"id": record["id"], "image": record["image"], "text": record["text"]}
        row |= {column: int(values[index]) for column, values in ranks.items()}
        rows.append(row)
    return rows


def zero_shot_rows(
    ref: str,
    records: list[dict[str, Any]],
    progress: ProgressFn | None,
    *,
    templates: Sequence[str] = DEFAULT_LABEL_TEMPLATES,
) -> list[dict[str, Any]]:
    """Each image's nearest label prompt (the labels of the file, each prompt the mean of
    ``templates`` with the label filled in) and whether it is the true label."""
    model, processor = load_clip(ref)
    labels = sorted({str(record["label"]) for record in records})
    images = _images(records, progress)
    predicted = zero_shot(model, processor, images, labels, templates).argmax(axis=1)  # (N,)
    rows = []
    for record, index in zip(records, predicted.tolist(), strict=True):
        rows.append({"id": record["id"], "image": record["image"], "label": record["label"],
                     "predicted": labels[index],
                     "accuracy": float(labels[index] == record["label"])})  # fmt: skip
    return rows
