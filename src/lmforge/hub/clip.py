"""Text-image dual encoders (CLIP): build, load, and embed texts and images.

Two Hugging Face classes hold every such model lmforge trains or loads, so a saved one
loads in plain transformers with ``AutoModel`` and ``AutoProcessor``:

- ``CLIPModel``: a CLIP checkpoint (both towers, projections, temperature);
- ``VisionTextDualEncoderModel``: any text encoder (the embedded MiniLM) beside any image
  encoder (a small ViT built from config, or a CLIP checkpoint's vision tower), with new
  projection heads.

The processor that goes with either (``CLIPProcessor`` or
``VisionTextDualEncoderProcessor``) tokenizes captions and resizes and normalizes images;
it is saved beside the weights. Embeddings come out L2-normalized, so a dot product is the
cosine similarity that CLIP's logits scale.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoProcessor,
    AutoTokenizer,
    CLIPVisionModel,
    VisionTextDualEncoderConfig,
    VisionTextDualEncoderModel,
    VisionTextDualEncoderProcessor,
    ViTConfig,
    ViTModel,
)
from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil

from lmforge.errors import LmforgeError
from lmforge.hub.load import quiet_transformers
from lmforge.hub.resolve import ADAPTER, CLIP, ResolvedModel, resolve

# Images from 0..1 to -1..1: the normalization a tower built here is trained with.
_HALF = [0.5, 0.5, 0.5]
DEFAULT_LABEL_TEMPLATES = ("a photo of a {label}",)  # zero-shot prompts, as CLIP's paper


@dataclass(frozen=True)
class VisionTower:
    """A ViT image tower built from config (random weights)."""

    image_size: int = 32
    patch_size: int = 4
    width: int = 128
    layers: int = 4
    heads: int = 4


def vit_image_processor(image_size: int) -> Any:
    """Resize to ``image_size`` square, scale to 0..1, normalize to -1..1 (Pillow only:
    no torchvision)."""
    return ViTImageProcessorPil(
        size={"height": image_size, "width": image_size}, image_mean=_HALF, image_std=_HALF
    )


def build_vision_tower(tower: VisionTower) -> Any:
    """A randomly initialized ViT for RGB images."""
    config = ViTConfig(
        image_size=tower.image_size,
        patch_size=tower.patch_size,
        num_channels=3,
        hidden_size=tower.width,
        num_hidden_layers=tower.layers,
        num_attention_heads=tower.heads,
        intermediate_size=tower.width * 2,
    )
    return ViTModel(config)


def pretrained_vision_tower(ref: str) -> tuple[Any, Any]:
    """The image tower and image processor of a local CLIP or ViT checkpoint.

    Raises:
        LmforgeError: the reference holds neither.
    """
    model = resolve(ref)
    config = AutoConfig.from_pretrained(model.path)
    tower: Any
    if config.model_type == "clip":
        tower = CLIPVisionModel.from_pretrained(model.path)
    elif config.model_type == "vit":
        tower = ViTModel.from_pretrained(model.path)
    else:
        raise LmforgeError(
            f"task.vision_ref: {ref!r} is a {config.model_type!r} model; give a local CLIP or "
            "ViT checkpoint (config.json model_type 'clip' or 'vit'), or leave it unset to "
            "build an image tower from task.image_size and the vision_* settings"
        )
    return tower, _image_processor_of(model.path)


def _image_processor_of(path: Path) -> Any:
    """A checkpoint's image processor: saved inside its processor (CLIP), or alone (ViT)."""
    try:
        return AutoProcessor.from_pretrained(path).image_processor
    except (OSError, ValueError, AttributeError):
        return AutoImageProcessor.from_pretrained(path)


def compose_dual_encoder(
    text_path: Path,
    *,
    vision: VisionTower,
    vision_ref: str | None,
    projection_dim: int,
    pretrained: bool = True,
) -> tuple[Any, Any]:
    """A ``VisionTextDualEncoderModel`` (text tower from ``text_path``; image tower from
    ``vision_ref`` or built from ``vision``) with new projection heads, and its processor.

    ``pretrained=False`` gives the text tower random weights too."""
    quiet_transformers()
    if pretrained:
        text_model = AutoModel.from_pretrained(text_path, add_pooling_layer=True)
    else:
        text_model = AutoModel.from_config(AutoConfig.from_pretrained(text_path))
    if vision_ref is not None:
        vision_model, image_processor = pretrained_vision_tower(vision_ref)
    else:
        vision_model, image_processor = build_vision_tower(vision), vit_image_processor(
            vision.image_size)  # fmt: skip
    config = VisionTextDualEncoderConfig.from_vision_text_configs(
        vision_model.config, text_model.config, projection_dim=projection_dim
    )
    model = VisionTextDualEncoderModel(config, vision_model=vision_model, text_model=text_model)
    tokenizer = AutoTokenizer.from_pretrained(text_path)
    return model, VisionTextDualEncoderProcessor(image_processor=image_processor,
                                                 tokenizer=tokenizer)  # fmt: skip


def load_clip(model: ResolvedModel | str) -> tuple[Any, Any]:
    """A saved dual encoder (``clip`` kind) and its processor, in eval mode.

    Raises:
        LmforgeError: the reference is not a text-image model.
    """
    if isinstance(model, str):
        model = resolve(model)
    if model.kind == ADAPTER:
        raise LmforgeError(
            f"{model.ref!r} is a LoRA adapter; text-image models are saved with their adapters "
            "merged, so point at a model directory (a clip training run's model/)"
        )
    if model.kind != CLIP:
        raise LmforgeError(
            f"{model.ref!r} is a {model.kind} model, not a text-image one; give a CLIP "
            "checkpoint or a model trained with task clip (config.json model_type 'clip' or "
            "'vision-text-dual-encoder')"
        )
    quiet_transformers()
    network = AutoModel.from_pretrained(model.path)
    processor = AutoProcessor.from_pretrained(model.path)
    network.eval()
    return network, processor


def load_processor(path: Path) -> Any:
    """The processor saved beside a dual encoder (tokenizer and image processor)."""
    quiet_transformers()
    return AutoProcessor.from_pretrained(path)


def text_features(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Projected, L2-normalized caption embeddings: ``(B, D)``."""
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in batch}
    pooled = model.get_text_features(**inputs).pooler_output  # (B, D)
    return torch.nn.functional.normalize(pooled.float(), dim=-1)


def image_features(model: Any, pixel_values: torch.Tensor) -> torch.Tensor:
    """Projected, L2-normalized image embeddings: ``(B, D)``."""
    pooled = model.get_image_features(pixel_values=pixel_values).pooler_output  # (B, D)
    return torch.nn.functional.normalize(pooled.float(), dim=-1)


def embed_texts(
    model: Any, processor: Any, texts: Sequence[str], *, batch_size: int = 256,
    max_length: int = 77,
) -> np.ndarray:  # fmt: skip
    """Normalized embeddings of ``texts``: ``(N, D)`` float32."""
    rows = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            batch = processor.tokenizer(list(texts[start : start + batch_size]), padding=True,
                                        truncation=True, max_length=max_length,
                                        return_tensors="pt")  # fmt: skip
            rows.append(text_features(model, batch).numpy())
    return np.concatenate(rows) if rows else np.zeros((0, projection_size(model)), np.float32)


def embed_images(
    model: Any,
    processor: Any,
    images: Sequence[Image.Image],
    *,
    batch_size: int = 256,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Normalized embeddings of RGB ``images``: ``(N, D)`` float32."""
    rows = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            chunk = list(images[start : start + batch_size])
            pixels = processor.image_processor(chunk, return_tensors="pt")["pixel_values"]
            rows.append(image_features(model, pixels).numpy())
            if progress is not None:
                progress(start + len(chunk), len(images))
    return np.concatenate(rows) if rows else np.zeros((0, projection_size(model)), np.float32)


def class_embeddings(
    model: Any, processor: Any, labels: Sequence[str], templates: Sequence[str]
) -> np.ndarray:
    """One normalized embedding per label: the mean of its prompts' embeddings
    (``templates`` with ``{label}`` filled in), normalized again, as CLIP's zero-shot
    classifier does: ``(L, D)``."""
    prompts = [template.replace("{label}", label) for label in labels for template in templates]
    embedded = embed_texts(model, processor, prompts).reshape(len(labels), len(templates), -1)
    mean = embedded.mean(axis=1)
    return mean / np.linalg.norm(mean, axis=1, keepdims=True)


def zero_shot(
    model: Any,
    processor: Any,
    images: Sequence[Image.Image],
    labels: Sequence[str],
    templates: Sequence[str],
) -> np.ndarray:
    """Each image's probability of each label: softmax over labels of the model's scaled
    cosine similarity to the label's prompts (``class_embeddings``): ``(N, L)``."""
    prompts = class_embeddings(model, processor, labels, templates)  # (L, D)
    logits = logit_scale(model) * embed_images(model, processor, images) @ prompts.T  # (N, L)
    logits -= logits.max(axis=1, keepdims=True)
    weights = np.exp(logits)
    return weights / weights.sum(axis=1, keepdims=True)


def projection_size(model: Any) -> int:
    """The size of the shared embedding space."""
    return int(model.config.projection_dim)


def logit_scale(model: Any) -> float:
    """The model's inverse temperature, exp(logit_scale)."""
    return float(model.logit_scale.detach().exp())
