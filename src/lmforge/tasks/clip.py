"""Contrastive text-image training (CLIP): a dual encoder and the symmetric InfoNCE loss.

The model is a CLIP checkpoint (``model.ref`` a local CLIP folder) or a text encoder
(``model.ref``, e.g. the embedded MiniLM) beside an image tower (a ViT built from the task
settings, or ``task.vision_ref``'s), joined by new projection heads (``lmforge.hub.clip``).

Loss: the image and caption embeddings of a batch, L2-normalized, give a (B, B) matrix of
cosine similarities times the learned inverse temperature exp(logit_scale), clamped at
``task.logit_scale_max`` as CLIP does; cross-entropy runs over rows (caption -> image) and
columns (image -> caption) and the two are averaged. Captions repeat in small domains (the
bundled digits have 90 distinct ones), so images in the batch with the same caption are all
positives: the target of a row is spread evenly over them. With distinct captions that is
exactly CLIP's loss.

LoRA adapters are merged into the saved model (``merge_on_save``): the base of a composed
dual encoder is no single checkpoint a plain adapter could name.

A frozen text tower (``task.frozen_towers: [text]``) runs without dropout, and each
distinct caption goes through it once: its pooled output is kept and only the projection
trains, as LiT precomputes its locked tower. Digits captions repeat (90 of them), so a step
then costs the image tower alone.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModel

from lmforge.config import RunConfig
from lmforge.config.tasks import ClipSettings
from lmforge.data.images import open_image
from lmforge.errors import LmforgeError
from lmforge.hub.clip import (
    TextTower,
    VisionTower,
    compose_dual_encoder,
    dual_encoder_processor,
    image_features,
    load_processor,
    text_features,
    vision_processor,
    vit_image_processor,
)
from lmforge.hub.resolve import CLIP_MODEL_TYPES
from lmforge.stats import retrieval_ranks, retrieval_summary
from lmforge.tasks.base import Batch, EncodeOptions, EncodeStats, Example, fit_length, pad

_TOWER_MODULES = {"text": "text_model", "image": "vision_model"}


def is_dual_encoder_dir(path: str | Path) -> bool:
    """Whether ``path`` holds a whole text-image model (not just a text encoder)."""
    return AutoConfig.from_pretrained(path).model_type in CLIP_MODEL_TYPES


class ClipTask:
    """The ``clip`` task; ``configured`` binds it to a run's settings."""

    name = "clip"
    settings = ClipSettings
    formats = ClipSettings.formats
    label_kind = None
    model_kinds = ("encoder", "clip")
    packable = False
    peft_task_type = None
    merge_on_save = True
    weights_subfolder = ""

    def __init__(self) -> None:
        self.options = ClipSettings(name="clip")
        self.head_modules: tuple[str, ...] = ()  # set by build_model: new heads and towers
        self.frozen_modules: tuple[str, ...] = ()
        self._frozen_text: dict[tuple[int, ...], torch.Tensor] = {}  # caption ids -> pooled

    def configured(self, config: RunConfig) -> ClipTask:
        assert isinstance(config.task, ClipSettings)
        if config.method.name == "lora" and config.train.strategy == "fsdp":
            raise LmforgeError(
                "train.strategy: fsdp shards the model, and task clip merges its LoRA "
                "adapters into the saved model, which needs it whole; use strategy ddp"
            )
        settings = config.task
        if config.method.name == "lora" and settings.text_layers and settings.vision_ref is None:
            raise LmforgeError(
                "method.name: lora adapts pretrained weights, and both towers are built from "
                "config here (task.text_layers, no task.vision_ref), so they train whole; use "
                "method.name full"
            )
        self.options = config.task
        self.frozen_modules = tuple(_TOWER_MODULES[t] for t in config.task.frozen_towers)
        return self

    @property
    def vision(self) -> VisionTower:
        o = self.options
        return VisionTower(o.image_size, o.patch_size, o.vision_width, o.vision_layers,
                           o.vision_heads)  # fmt: skip

    # --- model ---------------------------------------------------------------------

    def load_processor(self, path: str | Path) -> Any:
        """The dual encoder's own processor, or for a text encoder its tokenizer beside the
        image tower's image processor."""
        if is_dual_encoder_dir(path):
            return load_processor(Path(path))
        if self.options.vision_ref is not None:
            image_processor = vision_processor(self.options.vision_ref)
        else:
            image_processor = vit_image_processor(self.options.image_size)
        return dual_encoder_processor(Path(path), image_processor)

    def build_model(
        self, path: str, *, labels: Sequence[str], dtype: torch.dtype, pretrained: bool = True
    ) -> Any:
        if is_dual_encoder_dir(path):
            for setting in ("vision_ref", "text_layers"):
                if getattr(self.options, setting) is not None:
                    raise LmforgeError(
                        f"task.{setting}: model.ref {path} is a whole text-image model with "
                        f"its own towers; remove {setting}, or give a text encoder as model.ref"
                    )
            self.head_modules = ()
            if pretrained:
                return AutoModel.from_pretrained(path, dtype=dtype)
            return AutoModel.from_config(AutoConfig.from_pretrained(path), dtype=dtype)
        o = self.options
        text = None if o.text_layers is None else TextTower(o.text_layers, o.text_width,
                                                             o.text_heads)  # fmt: skip
        model, _ = compose_dual_encoder(
            Path(path),
            vision=self.vision,
            vision_ref=o.vision_ref,
            projection_dim=o.projection_dim,
            text=text,
            pretrained=pretrained,
        )
        # New weights train whatever the method: the heads, and towers built from config.
        new = ["visual_projection", "text_projection"]
        new += ["vision_model"] if o.vision_ref is None else []
        new += ["text_model"] if text is not None else []
        self.head_modules = tuple(new)
        return model.to(dtype)

    # --- data ----------------------------------------------------------------------

    def encode(
        self, records: Iterable[dict], tokenizer: Any, options: EncodeOptions
    ) -> tuple[list[Example], EncodeStats]:
        processor = tokenizer
        stats = EncodeStats()
        examples = []
        caption_ids: dict[str, int] = {}
        for record in records:
            caption = record.get("text") or self.options.label_template.replace(
                "{label}", str(record["label"]))  # fmt: skip
            ids = fit_length(list(processor.tokenizer(caption)["input_ids"]), options, stats)
            if ids is None:
                continue
            image = open_image(Path(record["image"]))
            pixels = processor.image_processor(image, return_tensors="pt")["pixel_values"][0]
            caption_id = caption_ids.setdefault(caption, len(caption_ids))
            examples.append({"input_ids": ids, "pixel_values": pixels, "caption_id": caption_id})
        stats.examples = len(examples)
        return examples, stats

    def collate(self, examples: Sequence[Example], tokenizer: Any, seed: int) -> Batch:
        pad_id = tokenizer.tokenizer.pad_token_id or 0
        return {
            "input_ids": pad([ex["input_ids"] for ex in examples], pad_id),  # (B, T)
            "attention_mask": pad([[1] * len(ex["input_ids"]) for ex in examples], 0),
            "pixel_values": torch.stack([ex["pixel_values"] for ex in examples]),  # (B, C, H, W)
            "caption_id": torch.tensor([ex["caption_id"] for ex in examples]),  # (B,)
        }

    # --- loss and metrics ----------------------------------------------------------

    def target_count(self, batch: Batch) -> int:
        return len(batch["caption_id"])

    def loss(self, model: Any, batch: Batch) -> torch.Tensor:
        logits = self._logits(model, batch)  # (B, B): captions x images
        same = batch["caption_id"][:, None] == batch["caption_id"][None, :]  # (B, B)
        targets = same.float() / same.sum(dim=1, keepdim=True)  # symmetric supports
        caption_to_image = -(targets * F.log_softmax(logits, dim=1)).sum(dim=1)
        image_to_caption = -(targets * F.log_softmax(logits.T, dim=1)).sum(dim=1)
        return ((caption_to_image + image_to_caption) / 2).sum()

    def _logits(self, model: Any, batch: Batch) -> torch.Tensor:
        texts = self._text_features(model, batch)  # (B, D)
        images = image_features(model, batch["pixel_values"])  # (B, D)
        ceiling = math.log(self.options.logit_scale_max)
        scale = model.logit_scale.clamp(max=ceiling).exp()
        return scale * texts @ images.T

    def _text_features(self, model: Any, batch: Batch) -> torch.Tensor:
        """Normalized caption embeddings ``(B, D)``; through the cache when the text tower
        is frozen."""
        if "text_model" not in self.frozen_modules:
            return text_features(model, batch)
        pairs = zip(batch["input_ids"], batch["attention_mask"], strict=True)
        rows = [tuple(ids[mask.bool()].tolist()) for ids, mask in pairs]
        missing = list(dict.fromkeys(row for row in rows if row not in self._frozen_text))
        if missing:
            tower = model.text_model
            was_training = tower.training
            tower.eval()  # a frozen tower is a fixed function: no dropout
            with torch.no_grad():
                ids = pad([list(row) for row in missing], 0)  # (M, T)
                mask = pad([[1] * len(row) for row in missing], 0)
                pooled = tower(input_ids=ids, attention_mask=mask).pooler_output  # (M, H)
            tower.train(was_training)
            self._frozen_text.update(zip(missing, pooled, strict=True))
        pooled = torch.stack([self._frozen_text[row] for row in rows])  # (B, H)
        return F.normalize(model.text_projection(pooled).float(), dim=-1)

    def evaluate(self, model: Any, batches: Iterable[Batch]) -> dict[str, Any]:
        """The loss plus caption->image and image->caption recall over the whole
        validation set (each caption against every validation image)."""
        total, count = 0.0, 0
        texts, images, captions = [], [], []
        with torch.no_grad():
            for batch in batches:
                total += float(self.loss(model, batch))
                count += len(batch["caption_id"])
                texts.append(self._text_features(model, batch))
                images.append(image_features(model, batch["pixel_values"]))
                captions += batch["caption_id"].tolist()
        similarity = (torch.cat(texts) @ torch.cat(images).T).numpy()  # (N, N)
        ranks = retrieval_ranks(similarity, np.asarray(captions))
        scale = float(model.logit_scale.detach().exp())
        return {"loss": total / max(count, 1), "logit_scale": scale, **retrieval_summary(ranks)}
