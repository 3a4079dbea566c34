"""Text-to-image diffusion models: build, load, save and sample them (diffusers parts).

A diffusion model lives in a diffusers pipeline folder, the layout Stable Diffusion ships
in, so one ``model_index.json`` names its parts and each part has its own sub-folder::

    model_index.json       the parts, as diffusers lists them
    unet/                  UNet2DConditionModel: predicts the noise (or velocity)
    scheduler/             the noise schedule it was trained with (DDPMScheduler settings)
    text_encoder/, tokenizer/   the frozen text encoder the UNet attends to (text models)
    vae/                   AutoencoderKL: latent models only (Stable Diffusion)
    lmforge_diffusion.json how lmforge conditions and sizes images (below)

A model trained here from a UNet built from config works in pixels (no VAE): small
images (16x16 digits) need no autoencoder. A Stable Diffusion folder works in its VAE's
latents and is loaded part by part with ``local_files_only``; fine-tuning it writes the
same folder back with a new UNet, so plain diffusers still loads it.

``lmforge_diffusion.json`` says how captions reach the UNet: ``"text_padding": "mask"``
(each caption's own tokens, padding masked: models trained here) or ``"max_length"``
(padded to the tokenizer's length, no mask: how Stable Diffusion was trained), or
``"conditioning": "label"`` with the class labels in order (the last class embedding is
the "no label" one that classifier-free guidance needs).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from lmforge.errors import LmforgeError
from lmforge.hub.load import quiet_transformers
from lmforge.hub.resolve import (
    ADAPTER,
    CLIP,
    DIFFUSION,
    PIPELINE_INDEX,
    ResolvedModel,
    check_pipeline_parts,
    resolve,
)

SETTINGS_FILE = "lmforge_diffusion.json"
SAMPLERS = ("ddim", "dpm")  # DDIM; DPM-Solver++ (2nd order, multistep)
_TEXT_PARTS = ("text_encoder", "tokenizer")


@dataclass
class Conditioning:
    """How a diffusion model is conditioned and what images it makes."""

    conditioning: str = "text"  # "text" | "label"
    text_padding: str = "mask"  # "mask" | "max_length" (Stable Diffusion's)
    labels: list[str] = field(default_factory=list)  # label conditioning, in index order
    image_size: int = 16  # pixels per side
    image_channels: int = 3  # 1: grey, 3: colour

    @classmethod
    def read(cls, folder: Path) -> Conditioning:
        """The settings in ``folder`` (Stable Diffusion's own when the file is absent)."""
        path = folder / SETTINGS_FILE
        if path.is_file():
            return cls(**json.loads(path.read_text()))
        unet = json.loads((folder / "unet" / "config.json").read_text())
        vae = json.loads((folder / "vae" / "config.json").read_text())
        scale = 2 ** (len(vae.get("block_out_channels", [0])) - 1)
        return cls(text_padding="max_length", image_size=int(unet["sample_size"]) * scale)


@dataclass(frozen=True)
class UNetShape:
    """A UNet built from config (random weights); levels after the first attend."""

    image_size: int = 16
    channels: int = 3
    block_channels: tuple[int, ...] = (32, 64, 64)
    layers_per_block: int = 1
    attention_head_dim: int = 8
    cross_attention_dim: int | None = None  # text conditioning: the text encoder's width
    classes: int | None = None  # label conditioning: labels + 1 (the "no label" class)


def build_unet(shape: UNetShape) -> Any:
    """A ``UNet2DConditionModel`` with random weights: cross-attention on text states, or
    self-attention plus a class embedding for labels."""
    from diffusers import UNet2DConditionModel

    levels = len(shape.block_channels)
    text = shape.cross_attention_dim is not None
    down = "CrossAttnDownBlock2D" if text else "AttnDownBlock2D"
    up = "CrossAttnUpBlock2D" if text else "AttnUpBlock2D"
    return UNet2DConditionModel(
        sample_size=shape.image_size,
        in_channels=shape.channels,
        out_channels=shape.channels,
        block_out_channels=shape.block_channels,
        down_block_types=("DownBlock2D",) + (down,) * (levels - 1),
        up_block_types=(up,) * (levels - 1) + ("UpBlock2D",),
        mid_block_type="UNetMidBlock2DCrossAttn" if text else "UNetMidBlock2D",
        layers_per_block=shape.layers_per_block,
        attention_head_dim=shape.attention_head_dim,
        norm_num_groups=8,
        cross_attention_dim=shape.cross_attention_dim or 8,  # unused without text
        num_class_embeds=shape.classes,
    )


def noise_scheduler(
    *, timesteps: int, schedule: str, prediction_type: str, folder: Path | None = None
) -> Any:
    """The DDPM training scheduler: a pipeline folder's own, else one from settings."""
    from diffusers import DDPMScheduler

    if folder is not None and (folder / "scheduler").is_dir():
        return DDPMScheduler.from_pretrained(folder, subfolder="scheduler", local_files_only=True)
    return DDPMScheduler(
        num_train_timesteps=timesteps,
        beta_schedule=schedule,
        prediction_type=prediction_type,
        clip_sample=False,
    )


# --- the parts around the UNet -------------------------------------------------------


@dataclass
class DiffusionParts:
    """Everything around the UNet: tokenizer, frozen text encoder, VAE, noise schedule and
    conditioning settings. It is what the training loop calls the processor: saved beside
    a whole UNet, and for a LoRA adapter only its settings (the base holds the rest)."""

    settings: Conditioning
    scheduler: Any  # DDPMScheduler
    tokenizer: Any = None
    text_encoder: Any = None  # frozen; None for label conditioning
    vae: Any = None  # frozen; None for a pixel-space model
    source: Path | None = None  # the pipeline folder the parts came from, if any
    whole: bool = True  # saved beside a whole UNet (not an adapter)

    @property
    def latent_scale(self) -> int:
        """Pixels per latent pixel per side (8 for Stable Diffusion; 1 in pixel space)."""
        if self.vae is None:
            return 1
        return int(2 ** (len(self.vae.config.block_out_channels) - 1))

    @property
    def sample_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of what the UNet denoises: latents or pixels."""
        side = self.settings.image_size // self.latent_scale
        channels = self.vae.config.latent_channels if self.vae is not None else None
        return channels or self.settings.image_channels, side, side

    def caption_ids(self, caption: str, max_length: int) -> list[int]:
        """A caption's token ids, as the UNet's text states are computed from them."""
        if self.settings.text_padding == "max_length":
            length = self.tokenizer.model_max_length
            return list(self.tokenizer(caption, padding="max_length", truncation=True,
                                       max_length=length)["input_ids"])  # fmt: skip
        return list(self.tokenizer(caption, truncation=True, max_length=max_length)["input_ids"])

    def text_states(self, rows: Sequence[Sequence[int]], device: torch.device) -> tuple[Any, Any]:
        """The frozen text encoder's hidden states of token-id rows: ``(B, T, H)`` and the
        ``(B, T)`` mask (None for ``max_length`` padding, which Stable Diffusion attends
        to whole)."""
        longest = max(len(row) for row in rows)
        pad_id = self.tokenizer.pad_token_id or 0
        ids = torch.tensor([list(r) + [pad_id] * (longest - len(r)) for r in rows], device=device)
        mask = torch.tensor([[1] * len(r) + [0] * (longest - len(r)) for r in rows], device=device)
        encoder = self.text_encoder.to(device)
        with torch.no_grad():
            states = encoder(input_ids=ids, attention_mask=mask).last_hidden_state  # (B, T, H)
        return states, (None if self.settings.text_padding == "max_length" else mask)

    def pixels(self, image: Image.Image) -> torch.Tensor:
        """An image as the model's input: resized, grey or colour, in -1..1 ``(C, H, W)``."""
        side = self.settings.image_size
        image = image.convert("L" if self.settings.image_channels == 1 else "RGB")
        image = image.resize((side, side), Image.Resampling.BICUBIC)
        array = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
        array = array[:, :, None] if array.ndim == 2 else array  # (H, W, C)
        return torch.from_numpy(array).permute(2, 0, 1).contiguous()

    def save_pretrained(self, folder: str | Path) -> None:
        """Write the parts (all of them beside a whole UNet; the settings for an adapter)."""
        folder = Path(folder)
        (folder / SETTINGS_FILE).write_text(json.dumps(asdict(self.settings), indent=2) + "\n")
        if not self.whole:
            return
        if self.source is not None:  # a pipeline folder: its other parts, unchanged
            for part in self.source.iterdir():
                if part.name not in {"unet", SETTINGS_FILE} and not (folder / part.name).exists():
                    copy = shutil.copytree if part.is_dir() else shutil.copy2
                    copy(part, folder / part.name)
            return
        self.scheduler.save_pretrained(folder / "scheduler")
        index: dict[str, Any] = {
            "_class_name": "LmforgeDiffusionPipeline",
            "scheduler": ["diffusers", type(self.scheduler).__name__],
            "unet": ["diffusers", "UNet2DConditionModel"],
        }
        if self.text_encoder is not None:
            self.text_encoder.save_pretrained(folder / "text_encoder")
            self.tokenizer.save_pretrained(folder / "tokenizer")
            index["text_encoder"] = ["transformers", type(self.text_encoder).__name__]
            index["tokenizer"] = ["transformers", type(self.tokenizer).__name__]
        (folder / PIPELINE_INDEX).write_text(json.dumps(index, indent=2) + "\n")


def text_parts(text_model: ResolvedModel, *, dtype: torch.dtype = torch.float32) -> tuple[Any, Any]:
    """(tokenizer, frozen text encoder) of a text encoder, a CLIP model (its text tower)
    or a diffusers pipeline folder (its text_encoder and tokenizer)."""
    from transformers import AutoModel, AutoTokenizer, CLIPTextModel

    quiet_transformers()
    path = text_model.path
    if text_model.kind == DIFFUSION:
        tokenizer = AutoTokenizer.from_pretrained(path / "tokenizer", local_files_only=True)
        encoder = AutoModel.from_pretrained(
            path / "text_encoder", local_files_only=True, dtype=dtype
        )
    elif text_model.kind == CLIP:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model_type = json.loads((path / "config.json").read_text()).get("model_type")
        if model_type == "clip":
            encoder = CLIPTextModel.from_pretrained(path, dtype=dtype)
        else:  # a dual encoder composed here: its text tower is a whole transformers model
            encoder = AutoModel.from_pretrained(path, dtype=dtype).text_model
    else:
        tokenizer = AutoTokenizer.from_pretrained(path)
        encoder = AutoModel.from_pretrained(path, dtype=dtype)
    encoder.requires_grad_(False).eval()
    return tokenizer, encoder


def load_parts(
    folder: Path, *, whole: bool = True, dtype: torch.dtype = torch.float32
) -> DiffusionParts:
    """The parts of pipeline folder ``folder``, loaded with ``local_files_only``; the
    networks in ``dtype``."""
    from diffusers import AutoencoderKL

    index = check_pipeline_parts(folder)
    settings = Conditioning.read(folder)
    tokenizer = encoder = vae = None
    if settings.conditioning == "text":
        missing = [part for part in _TEXT_PARTS if not index.get(part, [None])[0]]
        if missing:
            raise LmforgeError(
                f"diffusers pipeline {folder}: text conditioning needs its part "
                f"'{missing[0]}', which {PIPELINE_INDEX} does not list; use a pipeline "
                "with a text encoder and tokenizer"
            )
        text_model = ResolvedModel(str(folder), folder, DIFFUSION, "local")
        tokenizer, encoder = text_parts(text_model, dtype=dtype)
    if (index.get("vae") or [None])[0]:
        vae = AutoencoderKL.from_pretrained(
            folder, subfolder="vae", local_files_only=True, torch_dtype=dtype
        )
        vae.requires_grad_(False).eval()
    scheduler = noise_scheduler(timesteps=0, schedule="", prediction_type="", folder=folder)
    return DiffusionParts(settings, scheduler, tokenizer, encoder, vae, source=folder,
                          whole=whole)  # fmt: skip


def load_unet(folder: Path, *, dtype: torch.dtype = torch.float32) -> Any:
    """The UNet of pipeline folder ``folder``."""
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel.from_pretrained(
        folder, subfolder="unet", local_files_only=True, torch_dtype=dtype
    )


# --- generation ----------------------------------------------------------------------


@dataclass(frozen=True)
class GenerationSettings:
    """One generation request's knobs."""

    steps: int = 25
    guidance: float = 3.0  # classifier-free guidance scale; 1 turns it off
    seed: int = 0  # image i of a request starts from the noise of seed + i
    sampler: str = "ddim"  # "ddim" | "dpm"


StepFn = Callable[[int, int], None]  # (denoising step done, steps)


class ImageGenerator:
    """A loaded diffusion model (a pipeline folder, or a LoRA adapter on one) that turns
    prompts into images."""

    def __init__(self, model: str | ResolvedModel, *, device: str | None = None) -> None:
        resolved = resolve(model) if isinstance(model, str) else model
        if resolved.model_kind != DIFFUSION:
            raise LmforgeError(
                f"model '{resolved.ref}' is a {resolved.model_kind} model; image generation "
                "needs a diffusion model (a diffusers pipeline folder with model_index.json, "
                "a diffusion run, or a LoRA adapter on one)"
            )
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        # fp16 halves a GPU's memory and time; CPUs have no fast fp16 (or bf16 here)
        self.dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        folder = resolved.base.path if resolved.kind == ADAPTER and resolved.base else resolved.path
        self.parts = load_parts(folder, dtype=self.dtype)
        unet = load_unet(folder, dtype=self.dtype)
        if resolved.kind == ADAPTER:
            from peft import PeftModel

            unet = PeftModel.from_pretrained(unet, resolved.path).merge_and_unload()
        self.unet = unet.to(self.device).eval()
        for part in (self.parts.text_encoder, self.parts.vae):
            if part is not None:
                part.to(self.device)
        self.ref = resolved.ref
        self.labels = self.parts.settings.labels

    @property
    def image_size(self) -> int:
        return self.parts.settings.image_size

    def condition_of(self, prompt: str) -> str | int:
        """What a prompt conditions on: itself, or for a label model the label it names
        (its words or its index).

        Raises:
            LmforgeError: a label model given a prompt that names none of its labels.
        """
        if self.parts.settings.conditioning == "text":
            return prompt
        words = prompt.strip().lower()
        for index, label in enumerate(self.labels):
            if words in {label.lower(), str(index)} or words.split()[-1:] == [label.lower()]:
                return index
        raise LmforgeError(
            f"prompt {prompt!r}: this model generates one of its labels "
            f"({', '.join(self.labels)}); name one"
        )

    @torch.no_grad()
    def generate(
        self,
        prompts: Sequence[str],
        settings: GenerationSettings,
        *,
        on_step: StepFn | None = None,
    ) -> list[Image.Image]:
        """One image per prompt; image i starts from the noise of ``settings.seed + i``, so
        a seed gives the same images whatever the batch.

        Raises:
            LmforgeError: an unknown sampler, steps < 1, or a label model's unknown label.
        """
        if settings.sampler not in SAMPLERS:
            raise LmforgeError(f"sampler: {settings.sampler!r} is not one of {', '.join(SAMPLERS)}")
        if settings.steps < 1:
            raise LmforgeError(f"steps: {settings.steps}; give at least 1 denoising step")
        conditions = [self.condition_of(prompt) for prompt in prompts]
        scheduler = self._sampler(settings.sampler)
        scheduler.set_timesteps(settings.steps, device=self.device)
        noise = [
            torch.randn(self.parts.sample_shape,
                        generator=torch.Generator().manual_seed(settings.seed + i))
            for i in range(len(prompts))
        ]  # fmt: skip
        sample = torch.stack(noise).to(self.device, self.dtype) * scheduler.init_noise_sigma
        guided = settings.guidance != 1.0
        extra = self._conditioning(conditions, with_unconditional=guided)
        for number, t in enumerate(scheduler.timesteps):
            model_input = torch.cat([sample, sample]) if guided else sample
            model_input = scheduler.scale_model_input(model_input, t)
            prediction = self.unet(model_input, t, **extra).sample
            if guided:
                unconditional, conditional = prediction.chunk(2)
                prediction = unconditional + settings.guidance * (conditional - unconditional)
            sample = scheduler.step(prediction, t, sample).prev_sample
            if on_step is not None:
                on_step(number + 1, settings.steps)
        return self._images(sample)

    def _sampler(self, name: str) -> Any:
        from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

        config = self.parts.scheduler.config
        if name == "ddim":
            return DDIMScheduler.from_config(config)
        return DPMSolverMultistepScheduler.from_config(config, algorithm_type="dpmsolver++")

    def _conditioning(self, conditions: list[str | int], *, with_unconditional: bool) -> dict:
        """The UNet's conditioning arguments; with the unconditional half first for
        classifier-free guidance (the empty caption, or the "no label" class)."""
        if self.parts.settings.conditioning == "label":
            labels = [int(c) for c in conditions]
            if with_unconditional:
                labels = [len(self.labels)] * len(labels) + labels
            return {"encoder_hidden_states": None,
                    "class_labels": torch.tensor(labels, device=self.device)}  # fmt: skip
        captions = [str(c) for c in conditions]
        if with_unconditional:
            captions = [""] * len(captions) + captions
        rows = [self.parts.caption_ids(c, self.parts.tokenizer.model_max_length) for c in captions]
        states, mask = self.parts.text_states(rows, self.device)
        return {"encoder_hidden_states": states.to(self.dtype), "encoder_attention_mask": mask}

    def _images(self, sample: torch.Tensor) -> list[Image.Image]:
        """Decoded (latents) and converted: -1..1 ``(B, C, H, W)`` to Pillow images."""
        vae = self.parts.vae
        if vae is not None:
            sample = vae.decode(sample / vae.config.scaling_factor).sample
        array = ((sample.float().clamp(-1, 1) + 1) * 127.5).round().byte().cpu().numpy()
        array = array.transpose(0, 2, 3, 1)  # (B, H, W, C)
        if array.shape[-1] == 1:
            return [Image.fromarray(image[:, :, 0], mode="L") for image in array]
        return [Image.fromarray(image, mode="RGB") for image in array]
