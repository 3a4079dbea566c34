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

import tempfile
import threading
import warnings
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
from lmforge.runtime.onnx import import_onnxruntime

# Images from 0..1 to -1..1: the normalization a tower built here is trained with.
_HALF = [0.5, 0.5, 0.5]
DEFAULT_LABEL_TEMPLATES = ("a photo of a {label}",)  # zero-shot prompts, as CLIP's paper


@dataclass(frozen=True)
class TextTower:
    """A text tower built from config (random weights) in the architecture of a text
    encoder's folder; None fields keep that encoder's own."""

    layers: int
    width: int | None = None
    heads: int | None = None


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


def build_text_tower(text_path: Path, tower: TextTower) -> Any:
    """A randomly initialized text encoder in ``text_path``'s architecture and vocabulary,
    resized as ``tower`` says (the feed-forward layer 4x the width, as BERT's)."""
    config = AutoConfig.from_pretrained(text_path)
    config.num_hidden_layers = tower.layers
    if tower.width is not None:
        config.hidden_size, config.intermediate_size = tower.width, 4 * tower.width
    if tower.heads is not None:
        config.num_attention_heads = tower.heads
    return AutoModel.from_config(config)


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
    return tower, vision_processor(ref)


def vision_processor(ref: str) -> Any:
    """The image processor of a local CLIP or ViT checkpoint (without its weights): saved
    inside its processor (CLIP), or alone (ViT)."""
    path = resolve(ref).path
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
    text: TextTower | None = None,
    pretrained: bool = True,
) -> tuple[Any, Any]:
    """A ``VisionTextDualEncoderModel`` (text tower from ``text_path``, or built from
    ``text`` in its architecture; image tower from ``vision_ref`` or built from ``vision``)
    with new projection heads, and its processor.

    ``pretrained=False`` gives the text tower random weights too."""
    quiet_transformers()
    if text is not None:
        text_model = build_text_tower(text_path, text)
    elif pretrained:
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
    return model, dual_encoder_processor(text_path, image_processor)


def dual_encoder_processor(text_path: Path, image_processor: Any) -> Any:
    """The text tower's tokenizer and ``image_processor`` as one processor, the way
    ``VisionTextDualEncoderModel`` folders save them."""
    tokenizer = AutoTokenizer.from_pretrained(text_path)
    return VisionTextDualEncoderProcessor(image_processor=image_processor, tokenizer=tokenizer)


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


class OnnxTower:
    """One tower of a dual encoder (with its projection and normalization) run through
    onnxruntime, exported on its first call (about 2 s) and checked against PyTorch on
    that call; if it cannot be exported, or differs, PyTorch runs it. On 2 cores the
    embedded MiniLM text tower takes 3.4 ms per query this way instead of 9.8 ms
    (benchmarks/bench_images.py).

    Args:
        module: maps the named input tensors to ``(B, D)`` embeddings.
        dynamic: each input's axes that vary between calls, e.g. ``{"pixel_values": {0:
            "batch"}}``.
    """

    def __init__(self, module: torch.nn.Module, dynamic: dict[str, dict[int, str]]) -> None:
        self.module = module.eval()
        self.dynamic = dynamic
        self.onnx: bytes | None = None  # the exported graph, once it proved the same
        self._sessions: dict[int, Any] = {}
        self._ready = False
        self._lock = threading.Lock()

    def __call__(self, inputs: dict[str, np.ndarray], *, threads: int | None = None) -> np.ndarray:
        """The embeddings of ``inputs`` (in the order ``dynamic`` names them): ``(B, D)``;
        ``threads``: onnxruntime's threads (default: torch's)."""
        session = self._session(inputs, threads or torch.get_num_threads())
        if session is not None:
            return np.asarray(session.run(None, inputs)[0], dtype=np.float32)
        return self._torch(inputs)

    def _session(self, inputs: dict[str, np.ndarray], threads: int) -> Any:
        with self._lock:
            if not self._ready:
                self.onnx = self._export(inputs)
                self._ready = True
            if self.onnx is not None and threads not in self._sessions:
                self._sessions[threads] = _onnx_session(self.onnx, threads)
            return self._sessions.get(threads)

    def _torch(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        with torch.inference_mode():
            return self.module(*(torch.from_numpy(value) for value in inputs.values())).numpy()

    def _export(self, inputs: dict[str, np.ndarray]) -> bytes | None:
        """The tower as ONNX, or None to run it in PyTorch."""
        try:
            with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the exporter's notes on Python branches
                path = Path(folder) / "tower.onnx"
                example = tuple(torch.from_numpy(value) for value in inputs.values())
                torch.onnx.export(self.module, example, str(path), dynamo=False,
                                  input_names=list(inputs), output_names=["embedding"],
                                  dynamic_axes=self.dynamic)  # fmt: skip
                graph = path.read_bytes()
            exported = _onnx_session(graph, torch.get_num_threads()).run(None, inputs)[0]
        except Exception:  # an architecture the exporter cannot follow: run it as it is
            return None
        return graph if np.allclose(exported, self._torch(inputs), atol=1e-4) else None


def _onnx_session(graph: bytes, threads: int) -> Any:
    onnxruntime = import_onnxruntime()
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    return onnxruntime.InferenceSession(graph, options, providers=["CPUExecutionProvider"])


class QueryEncoder:
    """Embeds one sentence at a time, as a search box asks (``OnnxTower``)."""

    def __init__(self, model: Any, processor: Any, max_length: int = 77) -> None:
        self.tokenizer, self.max_length = processor.tokenizer, max_length
        axes = {"input_ids": {1: "tokens"}, "attention_mask": {1: "tokens"}}
        self.tower = OnnxTower(_TextTower(model), axes)

    def __call__(self, text: str) -> np.ndarray:
        """The normalized embedding of ``text``: ``(1, D)`` float32."""
        batch = self.tokenizer([text], truncation=True, max_length=self.max_length,
                               return_tensors="np")  # fmt: skip
        return self.tower({"input_ids": batch["input_ids"].astype(np.int64),
                           "attention_mask": batch["attention_mask"].astype(np.int64)})  # fmt: skip


class ImageEncoder:
    """Embeds batches of pictures (``OnnxTower``): what image indexes and image queries
    use, so both sides of a search go through the same function."""

    def __init__(self, model: Any, processor: Any) -> None:
        self.image_processor = processor.image_processor
        self.tower = OnnxTower(_ImageTower(model), {"pixel_values": {0: "batch"}})

    def __call__(self, images: Sequence[Image.Image]) -> np.ndarray:
        """The normalized embeddings of RGB ``images``: ``(N, D)`` float32."""
        return self.embed(self.pixels(images))

    def pixels(self, images: Sequence[Image.Image]) -> np.ndarray:
        """The model's input for RGB ``images`` (resized, normalized): ``(N, C, H, W)``."""
        pixels = self.image_processor(list(images), return_tensors="np")["pixel_values"]
        return np.asarray(pixels, dtype=np.float32)

    def embed(self, pixels: np.ndarray, *, threads: int | None = None) -> np.ndarray:
        """The normalized embeddings of ``pixels`` (from ``pixels``): ``(N, D)`` float32;
        ``threads``: the model's threads (default: all torch uses)."""
        return self.tower({"pixel_values": pixels}, threads=threads)


class _TextTower(torch.nn.Module):
    """``text_features`` as a module the ONNX exporter can trace."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return text_features(self.model, {"input_ids": input_ids, "attention_mask": attention_mask})


class _ImageTower(torch.nn.Module):
    """``image_features`` as a module the ONNX exporter can trace."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return image_features(self.model, pixel_values)


def projection_size(model: Any) -> int:
    """The size of the shared embedding space."""
    return int(model.config.projection_dim)


def logit_scale(model: Any) -> float:
    """The model's inverse temperature, exp(logit_scale)."""
    return float(model.logit_scale.detach().exp())
