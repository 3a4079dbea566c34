"""Judging generated images: does each show what was asked, and do they look like the real
ones? The code of the ``image-generation`` evaluation task (``lmforge.evaluate.tasks``).

For every record of the evaluation file the model generates one image from the record's
caption (or, for a label-conditioned model, its label). A judge, a small classifier
trained here on the labelled ``train.jsonl`` beside that file (for the bundled digits:
their training split, never the images judged), then

- labels each generated image: ``accuracy`` is the share recognised as the requested
  label (``judge_accuracy``: the same judge on the real images, its own ceiling);
- embeds generated and real images in its penultimate layer: ``frechet_distance`` is the
  Fréchet distance between the Gaussians fitted to the two (FID's formula, in the judge's
  space, not Inception's). The real records are split in two halves by position; the
  images generated for the first half are compared with the real second half, and
  ``frechet_floor`` is the distance between the two real halves, so both have the same
  sample sizes (the estimate's bias grows as samples shrink) and the floor is what a
  perfect generator would score.

The judge sees every image as the model does (resized to the model's side, grey), then
shrunk to 8x8 by area averaging: the digits' own resolution.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from lmforge.data.images import open_image
from lmforge.data.records import read_records
from lmforge.errors import LmforgeError
from lmforge.home import lmforge_home
from lmforge.hub.clip import embed_images, embed_texts, load_clip
from lmforge.hub.diffusion import GenerationSettings, ImageGenerator
from lmforge.progress import ProgressFn

JUDGE_SIDE = 8  # pixels per side the judge sees
JUDGE_FEATURES = 32  # width of the penultimate layer: the Fréchet distance's space
_JUDGE_SEED = 0
_GENERATION_BATCH = 16


def judge_view(image: Image.Image, model_side: int) -> np.ndarray:
    """An image as the judge sees it: grey, at the model's side, then area-averaged to
    ``JUDGE_SIDE`` pixels, in 0..1 ``(JUDGE_SIDE**2,)``."""
    grey = image.convert("L")
    if grey.size != (model_side, model_side):
        grey = grey.resize((model_side, model_side), Image.Resampling.BICUBIC)
    small = grey.resize((JUDGE_SIDE, JUDGE_SIDE), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float32).reshape(-1) / 255.0


class Judge(torch.nn.Module):
    """A two-layer perceptron over the judge's view: its penultimate layer is the space the
    Fréchet distance is measured in."""

    def __init__(self, classes: int) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Linear(JUDGE_SIDE**2, 128), torch.nn.ReLU(),
            torch.nn.Linear(128, JUDGE_FEATURES), torch.nn.ReLU(),
        )  # fmt: skip
        self.head = torch.nn.Linear(JUDGE_FEATURES, classes)

    def forward(self, views: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.body(views)  # (B, F)
        return features, self.head(features)  # (B, F), (B, classes)


def train_judge(views: np.ndarray, labels: Sequence[int], classes: int) -> Judge:
    """The judge fitted to ``views`` ``(N, 64)`` (full batch, seeded: the same judge on
    every machine for the same data)."""
    generator = torch.Generator().manual_seed(_JUDGE_SEED)
    torch_state = torch.get_rng_state()
    torch.manual_seed(_JUDGE_SEED)
    judge = Judge(classes)
    torch.set_rng_state(torch_state)
    x, y = torch.from_numpy(views), torch.tensor(list(labels))
    optimizer = torch.optim.AdamW(judge.parameters(), lr=3e-3, weight_decay=1e-3)
    for _ in range(400):
        noisy = x + 0.05 * torch.randn(x.shape, generator=generator)  # robust to small blur
        loss = torch.nn.functional.cross_entropy(judge(noisy)[1], y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return judge.eval()


def generation_rows(
    ref: str,
    records: list[dict[str, Any]],
    progress: ProgressFn | None,
    *,
    clip_model: str | None = None,
) -> list[dict[str, Any]]:
    """One row per record: the prompt, the judge's label for the image generated from it
    and for the real image, and both images' judge features; with ``clip_model``, both
    images' CLIPScore against the prompt."""
    if len(records) < 4:
        raise LmforgeError(
            f"the image-generation task needs at least 4 records (2 per half), got "
            f"{len(records)}; give more"
        )
    generator = ImageGenerator(ref)
    side = generator.image_size
    labels, judge = _judge_for(Path(records[0]["image"]), records, side)
    label_model = generator.parts.settings.conditioning == "label"
    prompts = [str(r["label"]) if label_model else str(r.get("text") or r["label"])
               for r in records]  # fmt: skip
    images = []
    for start in range(0, len(prompts), _GENERATION_BATCH):
        batch = prompts[start : start + _GENERATION_BATCH]
        images += generator.generate(batch, GenerationSettings(seed=start))
        if progress is not None:
            progress(len(images), len(prompts), "images generated")
    real_images = [open_image(Path(r["image"])) for r in records]
    generated = np.stack([judge_view(image, side) for image in images])
    real = np.stack([judge_view(image, side) for image in real_images])
    scores = {}
    if clip_model is not None:
        scores = {"clip_score": clip_scores(clip_model, images, prompts),
                  "clip_score_real": clip_scores(clip_model, real_images, prompts)}  # fmt: skip
    with torch.no_grad():
        generated_features, generated_logits = judge(torch.from_numpy(generated))
        real_features, real_logits = judge(torch.from_numpy(real))
    folder = generated_dir() / f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    folder.mkdir(parents=True)
    half = len(records) // 2
    rows = []
    for index, record in enumerate(records):
        wanted = str(record["label"])
        path = folder / f"{index:05d}.png"
        images[index].save(path)
        seen = labels[int(generated_logits[index].argmax())]
        rows.append({
            "id": record["id"], "prompt": prompts[index], "label": wanted, "predicted": seen,
            "generated_image": str(path),
            "accuracy": float(seen == wanted),
            "judge_accuracy": float(labels[int(real_logits[index].argmax())] == wanted),
            "half": int(index >= half),
            "generated_features": [round(v, 5) for v in generated_features[index].tolist()],
            "real_features": [round(v, 5) for v in real_features[index].tolist()],
            **{name: values[index] for name, values in scores.items()},
        })  # fmt: skip
    return rows


def clip_scores(
    clip_model: str, images: Sequence[Image.Image], texts: Sequence[str]
) -> list[float]:
    """CLIPScore of each image against its text under a text-image model: 100 times the
    cosine of their embeddings, floored at 0 (as torchmetrics computes it)."""
    model, processor = load_clip(clip_model)
    image_vectors = embed_images(model, processor, [image.convert("RGB") for image in images])
    text_vectors = embed_texts(model, processor, list(texts))  # (N, D), normalised
    cosines = (image_vectors * text_vectors).sum(axis=1)
    return [round(100 * max(float(c), 0.0), 4) for c in cosines]


def _judge_for(
    first_image: Path, records: list[dict[str, Any]], side: int
) -> tuple[list[str], Judge]:
    """The judge trained on the labelled ``train.jsonl`` beside the evaluation file."""
    train_file = _train_file(first_image)
    train, _ = read_records(train_file, format="image_label", source_name="judge training data")
    labels = sorted({str(r["label"]) for r in train})
    unknown = sorted({str(r["label"]) for r in records} - set(labels))
    if unknown:
        raise LmforgeError(
            f"the image-generation judge: labels {unknown} never occur in {train_file}; add "
            "training images for them"
        )
    views = np.stack([judge_view(open_image(Path(r["image"])), side) for r in train])
    index = {label: i for i, label in enumerate(labels)}
    return labels, train_judge(views, [index[str(r["label"])] for r in train], len(labels))


def _train_file(first_image: Path) -> Path:
    """``train.jsonl`` in the folder of the evaluation file (its images' parent's parent,
    or their parent)."""
    for folder in (first_image.parent.parent, first_image.parent):
        if (folder / "train.jsonl").is_file():
            return folder / "train.jsonl"
    raise LmforgeError(
        f"the image-generation judge is trained on labelled images in a train.jsonl beside "
        f"the evaluation file; none found near {first_image} (looked in "
        f"{first_image.parent.parent} and {first_image.parent}). Put the training split there "
        "(the bundled digits have one: bundled:digits/test)"
    )


def sample_grid(images: Sequence[Image.Image], *, columns: int = 10, scale: int = 2) -> Image.Image:
    """Images side by side, ``columns`` per row, each enlarged ``scale`` times."""
    side = images[0].size[0] * scale
    rows = math.ceil(len(images) / columns)
    grid = Image.new("RGB", (columns * side, rows * side), "white")
    for index, image in enumerate(images):
        tile = image.convert("RGB").resize((side, side), Image.Resampling.NEAREST)
        grid.paste(tile, ((index % columns) * side, (index // columns) * side))
    return grid


def generated_dir() -> Path:
    """Where evaluation runs keep the images they generate (one folder per run)."""
    return lmforge_home() / "generated"
