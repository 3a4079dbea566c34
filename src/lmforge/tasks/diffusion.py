"""Text-to-image diffusion (DDPM): a UNet learns to predict the noise added to an image.

The model is a ``UNet2DConditionModel`` (``lmforge.hub.diffusion``): built from the task
settings, conditioned through cross-attention on the hidden states of ``model.ref``'s
frozen text encoder (the embedded MiniLM, a CLIP model's text tower), or on a learned
embedding per class label; or the UNet of a Stable Diffusion folder (``model.ref``),
which keeps its own text encoder, VAE and noise schedule.

Each training example is an image x0 with a timestep t, Gaussian noise e and a coin flip
that drops its caption (``task.condition_dropout``), all drawn in ``collate`` from the
batch seed and the example's position in the data set, so a resumed run and a run on
more processes draw the same ones. The loss is the mean squared error between the UNet's
output on x_t = sqrt(a_t) x0 + sqrt(1 - a_t) e and its target: e (epsilon) or
v = sqrt(a_t) e - sqrt(1 - a_t) x0 (v-prediction), averaged over pixels.

Dropped captions are trained as the empty caption (the "no label" class for labels): the
unconditional model that classifier-free guidance extrapolates away from at sampling
time. The frozen text encoder runs once per distinct caption, when the data is encoded; its
states are kept.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from lmforge.config import RunConfig
from lmforge.config.tasks import DiffusionSettings
from lmforge.data.images import open_image
from lmforge.errors import LmforgeError
from lmforge.hub.diffusion import (
    Conditioning,
    DiffusionParts,
    UNetShape,
    build_unet,
    load_parts,
    load_unet,
    noise_scheduler,
    text_parts,
)
from lmforge.hub.resolve import DIFFUSION, resolve
from lmforge.tasks.base import Batch, EncodeOptions, EncodeStats, Example, fit_length, pad

_SEED_MODULUS = 2**63 - 1


class DiffusionTask:
    """The ``diffusion`` task; ``configured`` binds it to a run's settings."""

    name = "diffusion"
    settings = DiffusionSettings
    formats = DiffusionSettings.formats
    model_kinds = ("encoder", "clip", DIFFUSION)
    packable = False
    peft_task_type = None
    merge_on_save = False
    weights_subfolder = "unet"  # a diffusers pipeline folder
    head_modules: tuple[str, ...] = ()
    frozen_modules: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.options = DiffusionSettings(name="diffusion")
        self.label_kind: str | None = None
        self.lora = False
        self.parts: DiffusionParts | None = None  # set by load_processor
        self._states: dict[tuple[int, ...], torch.Tensor] = {}  # caption ids -> text states

    def configured(self, config: RunConfig) -> DiffusionTask:
        assert isinstance(config.task, DiffusionSettings)
        self.options = config.task
        self.label_kind = "class" if config.task.conditioning == "label" else None
        self.lora = config.method.name == "lora"
        problems = {
            "train.strategy": "fsdp shards the UNet; use strategy ddp"
            if config.train.strategy == "fsdp" else None,
            "train.gradient_checkpointing": "not wired for diffusers UNets; turn it off"
            if config.train.gradient_checkpointing else None,
            "method.name": f"{config.method.name} picks transformer layers; use full or lora"
            if config.method.name == "freeze" else None,
        }  # fmt: skip
        for setting, problem in problems.items():
            if problem:
                raise LmforgeError(f"{setting}: task diffusion: {problem}")
        return self

    # --- model ---------------------------------------------------------------------

    def load_processor(self, path: str | Path) -> DiffusionParts:
        """The parts around the UNet: a pipeline folder's own, or ``model.ref``'s text
        encoder beside a noise schedule from the settings."""
        path = Path(path)
        base = resolve(str(path))
        o = self.options
        if base.kind == DIFFUSION:
            parts = load_parts(path, whole=not self.lora)
            if parts.settings.conditioning != o.conditioning:
                raise LmforgeError(
                    f"task.conditioning: {o.conditioning!r}, but model.ref {path} is "
                    f"conditioned on {parts.settings.conditioning}; set it to "
                    f"{parts.settings.conditioning!r}"
                )
        else:
            settings = Conditioning(o.conditioning, "mask", [], o.image_size, o.image_channels)
            tokenizer, encoder = text_parts(base) if o.conditioning == "text" else (None, None)
            scheduler = noise_scheduler(timesteps=o.train_timesteps, schedule=o.noise_schedule,
                                        prediction_type=o.prediction_type)  # fmt: skip
            parts = DiffusionParts(settings, scheduler, tokenizer, encoder, whole=not self.lora)
        self.parts = parts
        return parts

    def build_model(
        self, path: str, *, labels: Sequence[str], dtype: torch.dtype, pretrained: bool = True
    ) -> Any:
        parts = self._parts()
        parts.settings.labels = list(labels) if self.options.conditioning == "label" else []
        if parts.source is not None:
            unet = load_unet(parts.source, dtype=dtype)
            return unet if pretrained else type(unet).from_config(unet.config)
        if self.lora:
            raise LmforgeError(
                "method.name: lora adapts a pretrained UNet, and this one is built from the "
                "task settings (model.ref is a text encoder, not a diffusers pipeline); use "
                "method.name full, or a pipeline folder as model.ref"
            )
        o = self.options
        width = parts.text_encoder.config.hidden_size if parts.text_encoder is not None else None
        shape = UNetShape(
            image_size=o.image_size,
            channels=o.image_channels,
            block_channels=tuple(o.block_channels),
            layers_per_block=o.layers_per_block,
            attention_head_dim=o.attention_head_dim,
            cross_attention_dim=width,
            classes=len(labels) + 1 if o.conditioning == "label" else None,
        )
        unet = build_unet(shape)
        return unet if dtype == torch.float32 else unet.to(dtype=dtype)

    def _parts(self) -> DiffusionParts:
        if self.parts is None:
            raise LmforgeError("task diffusion: load_processor must run before the model")
        return self.parts

    # --- data ----------------------------------------------------------------------

    def encode(
        self, records: Iterable[dict], tokenizer: Any, options: EncodeOptions
    ) -> tuple[list[Example], EncodeStats]:
        parts: DiffusionParts = tokenizer
        stats = EncodeStats()
        examples: list[Example] = []
        labels = {label: index for index, label in enumerate(options.labels)}
        for record in records:
            if self.options.conditioning == "label":
                ids = [labels[str(record["label"])]]
            else:
                caption = record.get("text") or self.options.label_template.replace(
                    "{label}", str(record["label"]))  # fmt: skip
                found = fit_length(parts.caption_ids(caption, options.max_length), options, stats)
                if found is None:
                    continue
                ids = found
            pixels = parts.pixels(open_image(Path(record["image"])))  # (C, H, W)
            examples.append({"input_ids": ids, "pixel_values": pixels, "index": len(examples)})
        stats.examples = len(examples)
        if self.options.conditioning == "text":
            captions = {tuple(example["input_ids"]) for example in examples}
            self._encode_captions(parts, captions | {tuple(self._empty_condition(parts))})
        return examples, stats

    def collate(self, examples: Sequence[Example], tokenizer: Any, seed: int) -> Batch:
        """Images, captions (dropped ones replaced), and each example's timestep, noise
        and (latent models) VAE sampling noise, drawn from ``seed`` and its index."""
        parts: DiffusionParts = tokenizer
        o = self.options
        empty = self._empty_condition(parts)
        rows, timesteps, noise, latent_noise = [], [], [], []
        steps = parts.scheduler.config.num_train_timesteps
        for example in examples:
            example_seed = (seed * 1_000_003 + example["index"]) % _SEED_MODULUS
            draw = torch.Generator().manual_seed(example_seed)
            timesteps.append(int(torch.randint(0, steps, (1,), generator=draw)))
            noise.append(torch.randn(parts.sample_shape, generator=draw))
            if parts.vae is not None:
                latent_noise.append(torch.randn(parts.sample_shape, generator=draw))
            dropped = float(torch.rand((), generator=draw)) < o.condition_dropout
            rows.append(empty if dropped else example["input_ids"])
        batch = {
            "pixel_values": torch.stack([ex["pixel_values"] for ex in examples]),  # (B, C, H, W)
            "timesteps": torch.tensor(timesteps),  # (B,)
            "noise": torch.stack(noise),  # (B, c, h, w): pixels, or latents
            "input_ids": pad(rows, 0),  # (B, T): caption ids, or one label index
            "attention_mask": pad([[1] * len(row) for row in rows], 0),
        }
        if parts.vae is not None:
            batch["latent_noise"] = torch.stack(latent_noise)
        return batch

    def _empty_condition(self, parts: DiffusionParts) -> list[int]:
        if self.options.conditioning == "label":
            return [len(parts.settings.labels)]  # the "no label" class
        return parts.caption_ids("", self.options.max_length)

    # --- loss and metrics ----------------------------------------------------------

    def target_count(self, batch: Batch) -> int:
        return len(batch["timesteps"])

    def loss(self, model: Any, batch: Batch) -> torch.Tensor:
        """The squared error per example (mean over its pixels), summed over the batch."""
        parts = self._parts()
        clean = self._clean_sample(parts, batch)  # (B, c, h, w)
        noise, timesteps = batch["noise"], batch["timesteps"]
        scheduler = parts.scheduler
        noisy = scheduler.add_noise(clean, noise, timesteps)
        if scheduler.config.prediction_type == "v_prediction":
            target = scheduler.get_velocity(clean, noise, timesteps)
        else:
            target = noise
        prediction = model(noisy, timesteps, **self._conditioning(parts, batch)).sample
        error = F.mse_loss(prediction.float(), target.float(), reduction="none")
        return error.flatten(1).mean(dim=1).sum()

    def _clean_sample(self, parts: DiffusionParts, batch: Batch) -> torch.Tensor:
        """The images, or for a latent model their VAE latents (sampled with the batch's
        own noise, scaled as the UNet was trained)."""
        pixels = batch["pixel_values"]
        if parts.vae is None:
            return pixels
        vae = parts.vae.to(pixels.device)
        with torch.no_grad():
            posterior = vae.encode(pixels).latent_dist
            latents = posterior.mean + posterior.std * batch["latent_noise"]
        return latents * vae.config.scaling_factor

    def _conditioning(self, parts: DiffusionParts, batch: Batch) -> dict[str, Any]:
        if self.options.conditioning == "label":
            return {"encoder_hidden_states": None, "class_labels": batch["input_ids"][:, 0]}
        pairs = zip(batch["input_ids"], batch["attention_mask"], strict=True)
        rows = [tuple(ids[mask.bool()].tolist()) for ids, mask in pairs]
        self._encode_captions(parts, set(rows))
        longest = max(len(row) for row in rows)
        states = torch.stack([F.pad(self._states[row], (0, 0, 0, longest - len(row)))
                              for row in rows])  # fmt: skip  # (B, T, H)
        states = states.to(batch["input_ids"].device)
        mask = None if parts.settings.text_padding == "max_length" else pad(
            [[1] * len(row) for row in rows], 0).to(states.device)  # fmt: skip
        return {"encoder_hidden_states": states, "encoder_attention_mask": mask}

    def _encode_captions(self, parts: DiffusionParts, rows: set[tuple[int, ...]]) -> None:
        """Run the frozen text encoder over the captions not yet encoded, in a fixed order
        (by length, then ids) and fixed chunks: a caption's states depend on the data set,
        never on the batch it first came in, so a resumed run sees the same ones."""
        missing = sorted(rows - self._states.keys(), key=lambda row: (len(row), row))
        for start in range(0, len(missing), 64):
            chunk = missing[start : start + 64]
            states, _ = parts.text_states(chunk, torch.device("cpu"))  # (C, T, H)
            for row, state in zip(chunk, states, strict=True):
                self._states[row] = state[: len(row)].clone()

    def evaluate(self, model: Any, batches: Iterable[Batch]) -> dict[str, Any]:
        """The validation loss, with noise fixed by each batch's seed."""
        total, count = 0.0, 0
        with torch.no_grad():
            for batch in batches:
                total += float(self.loss(model, batch))
                count += self.target_count(batch)
        return {"loss": total / max(count, 1)}
