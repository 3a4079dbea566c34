"""Tiny random models with the real zoo tokenizers, for fast tests and dry runs.

Two layers, width 64: they load and run in milliseconds, exercise the same code paths
as the real models, and produce gibberish.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
    BertModel,
    LlamaConfig,
    LlamaForCausalLM,
)

from lmforge.home import atomic_dir
from lmforge.hub.zoo import ZOO, cache_problem, cached_dir, package_source


def zoo_tokenizer(name: str) -> Any:
    """Load a zoo model's tokenizer without converting its weights."""
    entry = ZOO[name]
    source = package_source(entry)
    if source.is_dir():
        return AutoTokenizer.from_pretrained(source)
    if cache_problem(cached_dir(name)) is None:
        return AutoTokenizer.from_pretrained(cached_dir(name))
    return AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)


def build_tiny_causal_lm(
    out_dir: Path, *, seed: int = 0, tokenizer: Any = None, context: int = 512
) -> Path:
    """Save a 2-layer LLaMA with SmolLM2's tokenizer and chat template to ``out_dir``."""
    tokenizer = tokenizer or zoo_tokenizer("smollm2-135m-instruct")
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=context,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    return _save(model, tokenizer, out_dir)


def build_tiny_encoder(out_dir: Path, *, seed: int = 0) -> Path:
    """Save a 2-layer BERT with MiniLM's tokenizer to ``out_dir``."""
    return _build_tiny_bert(BertModel, out_dir, seed)


def build_tiny_classifier(
    out_dir: Path, *, labels: tuple[str, ...] = ("negative", "neutral", "positive"), seed: int = 0
) -> Path:
    """Save a 2-layer BERT sequence classifier with MiniLM's tokenizer to ``out_dir``.

    Its weights start at 10x BERT's init scale: at 0.02 the random head gives every
    text the same label, and tests comparing labels would prove nothing.
    """
    return _build_tiny_bert(
        BertForSequenceClassification, out_dir, seed,
        id2label=dict(enumerate(labels)),
        label2id={label: index for index, label in enumerate(labels)},
        initializer_range=0.2,
    )  # fmt: skip


def _build_tiny_bert(model_class: Any, out_dir: Path, seed: int, **extra: Any) -> Path:
    tokenizer = zoo_tokenizer("all-minilm-l6-v2")
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        **extra,
    )
    torch.manual_seed(seed)
    return _save(model_class(config), tokenizer, out_dir)


def _save(model: Any, tokenizer: Any, out_dir: Path) -> Path:
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return out_dir


def build_tiny_stable_diffusion(out_dir: Path, *, seed: int = 0) -> Path:
    """Save a Stable Diffusion pipeline folder with random weights to ``out_dir``: every
    part of the real one (UNet on 4 latent channels, KL autoencoder, CLIP text encoder,
    tokenizer, scheduler) at the sizes diffusers' own tests use, on 16x16 images, with
    MiniLM's tokenizer (no CLIP tokenizer ships here) cut to CLIP's 77 tokens."""
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = zoo_tokenizer("all-minilm-l6-v2")
    tokenizer.model_max_length = 77
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(4, 8), layers_per_block=1, sample_size=8, in_channels=4,
        out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
        norm_num_groups=2,
    )  # fmt: skip
    vae = AutoencoderKL(
        block_out_channels=[4, 8], in_channels=3, out_channels=3, latent_channels=4,
        down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
        norm_num_groups=2,
    )  # fmt: skip
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37,
            num_attention_heads=4, num_hidden_layers=2, max_position_embeddings=77,
            pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.cls_token_id,
            eos_token_id=tokenizer.sep_token_id,
        )
    )  # fmt: skip
    scheduler = DDIMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
        set_alpha_to_one=False, steps_offset=1,
    )  # fmt: skip
    pipeline = StableDiffusionPipeline(
        unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
        scheduler=scheduler, safety_checker=None, feature_extractor=None,
        requires_safety_checker=False,
    )  # fmt: skip
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        pipeline.save_pretrained(tmp)  # type: ignore[attr-defined]
    return out_dir
