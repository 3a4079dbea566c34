"""Text-to-image benchmark: a diffusion model trained on the bundled digits, judged on the
held-out test split; the training step against a plain diffusers loop; sampling speed.

1. train: ``examples/train/diffusion_digits.yaml`` through lmforge's training loop, then
   ``lmforge eval``'s image-generation task on the test split (one image per test caption,
   25 DDIM steps, guidance 3): the share a judge trained on the training split recognises
   as the digit asked for, and the Fréchet distance in the judge's features beside the
   real-vs-real floor. Targets: at most 10 minutes of training on 2 cores; accuracy at
   least 0.80 (chance: 0.10); distance within 3x the floor.
2. step: lmforge's training step against diffusers' ``train_unconditional.py`` recipe (the
   same UNet, batch, noise scheduler, AdamW, gradient clipping, linear warmup and cosine
   decay, diffusers' ``EMAModel``), with the text conditioning it lacks added the cheapest
   way (each caption's MiniLM states computed once before the loop, as lmforge does when
   it encodes the data) and the images decoded up front. The same number of steps each,
   alternating, three times; the fastest of each. Target: lmforge at least 1.0x the plain
   loop's steps per second.
3. sample: images per second at 25 DDIM steps with guidance, batch 1 and batch 16.

Run: python benchmarks/bench_diffusion.py [--only train|step|sample] [--steps N]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import append_result

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "examples" / "train" / "diffusion_digits.yaml"
STEP_BENCH_STEPS = 60
STEP_BENCH_ROUNDS = 3


def _config(overrides: list[str], out: Path) -> Any:
    from lmforge.config import load_config

    return load_config(CONFIG, [*overrides, f"output.dir={out}"])


def bench_train(steps: int | None, folder: Path) -> tuple[dict[str, str], str]:
    from lmforge.data.bundled import dataset_path
    from lmforge.evaluate.runner import evaluate_model
    from lmforge.train.loop import train

    config = _config([f"train.max_steps={steps}"] if steps else [], folder / "run")
    started = time.perf_counter()
    result = train(config, track=False)
    wall = time.perf_counter() - started
    scored = evaluate_model(str(result.model_dir), dataset_path("digits", "test"),
                            "image-generation", track=False)  # fmt: skip
    metrics, intervals = scored.metrics, scored.intervals

    def shown(name: str) -> str:
        low, high = intervals[name]
        return f"{metrics[name]:.3f} [{low:.3f}, {high:.3f}]"

    ratio = metrics["frechet_distance"] / metrics["frechet_floor"]
    row = {
        "steps": str(result.steps),
        "train s": f"{result.train_seconds:.1f} (wall {wall:.1f})",
        "recognised as asked (test)": shown("accuracy"),
        "judge on real test": shown("judge_accuracy"),
        "Fréchet distance": f"{metrics['frechet_distance']:.2f}",
        "real-vs-real floor": f"{metrics['frechet_floor']:.2f}",
        "distance / floor": f"{ratio:.2f}x",
        "images": str(len(scored.examples)),
    }
    append_result("diffusion: text-to-image training on the digits", row)
    return row, str(result.model_dir)


def _plain_diffusers_loop(config: Any, steps: int) -> float:
    """Seconds for ``steps`` steps of diffusers' train_unconditional.py recipe on the same
    UNet, batch and scheduler, conditioned on precomputed caption states."""
    import torch
    import torch.nn.functional as F
    from diffusers import DDPMScheduler
    from diffusers.optimization import get_cosine_schedule_with_warmup
    from diffusers.training_utils import EMAModel

    from lmforge.tasks import get_task
    from lmforge.train.data import build_data

    torch.manual_seed(config.train.seed)
    task = get_task("diffusion").configured(config)
    parts = task.load_processor(Path(_resolved(config.model.ref)))
    data = build_data(task, parts, config.data, max_length=config.task.max_length)
    unet = task.build_model("", labels=[], dtype=torch.float32)
    settings = config.task
    scheduler = DDPMScheduler(
        num_train_timesteps=settings.train_timesteps, beta_schedule=settings.noise_schedule,
        prediction_type=settings.prediction_type, clip_sample=False,
    )  # fmt: skip
    images = torch.stack([example["pixel_values"] for example in data.train])  # (N, C, H, W)
    captions = [tuple(example["input_ids"]) for example in data.train]
    states = {c: parts.text_states([c], torch.device("cpu"))[0][0] for c in set(captions)}
    optimizer = torch.optim.AdamW(unet.parameters(), lr=config.train.lr,
                                  weight_decay=config.train.weight_decay)  # fmt: skip
    lr_scheduler = get_cosine_schedule_with_warmup(optimizer, int(0.05 * steps), steps)
    ema = EMAModel(unet.parameters(), decay=config.train.ema_decay, use_ema_warmup=False)
    batch = config.train.batch_size
    started = time.perf_counter()
    for _ in range(steps):
        chosen = torch.randint(0, len(images), (batch,))
        clean = images[chosen]
        rows = [captions[i] for i in chosen.tolist()]
        longest = max(len(r) for r in rows)
        hidden = torch.stack([F.pad(states[r], (0, 0, 0, longest - len(r))) for r in rows])
        mask = torch.tensor([[1] * len(r) + [0] * (longest - len(r)) for r in rows])
        noise = torch.randn(clean.shape)
        timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (batch,))
        noisy = scheduler.add_noise(clean, noise, timesteps)
        prediction = unet(noisy, timesteps, encoder_hidden_states=hidden,
                          encoder_attention_mask=mask).sample  # fmt: skip
        loss = F.mse_loss(prediction, noise)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        optimizer.step()
        lr_scheduler.step()
        optimizer.zero_grad()
        ema.step(unet.parameters())
    return time.perf_counter() - started


def _resolved(ref: str) -> str:
    from lmforge.hub import resolve

    return str(resolve(ref).path)


def bench_step(folder: Path) -> dict[str, str]:
    from lmforge.train.loop import train

    steps = STEP_BENCH_STEPS
    ours, theirs = [], []
    for round_number in range(STEP_BENCH_ROUNDS):
        config = _config([f"train.max_steps={steps}"], folder / f"step-{round_number}")
        theirs.append(_plain_diffusers_loop(config, steps))
        ours.append(train(config, track=False).train_seconds)
    ours_rate, theirs_rate = steps / min(ours), steps / min(theirs)
    row = {
        "steps x batch": f"{steps} x {config.train.batch_size}",
        "lmforge steps/s": f"{ours_rate:.3f}",
        "plain diffusers loop steps/s": f"{theirs_rate:.3f}",
        "ratio": f"{ours_rate / theirs_rate:.2f}x (best of {STEP_BENCH_ROUNDS} each)",
    }
    append_result("diffusion: training step against a plain diffusers loop", row)
    return row


def bench_sample(model_ref: str) -> dict[str, str]:
    from lmforge.hub.diffusion import GenerationSettings, ImageGenerator

    generator = ImageGenerator(model_ref)
    settings = GenerationSettings(steps=25, guidance=3.0, seed=0)
    generator.generate(["a thin, upright one"], settings)  # warm up
    rates = {}
    for batch, repeats in ((1, 8), (16, 2)):
        prompts = ["a thick, right-leaning seven"] * batch
        started = time.perf_counter()
        for _ in range(repeats):
            generator.generate(prompts, settings)
        rates[batch] = batch * repeats / (time.perf_counter() - started)
    row = {
        "steps": "25 (DDIM, guidance 3)",
        "images/s batch 1": f"{rates[1]:.1f}",
        "images/s batch 16": f"{rates[16]:.1f}",
        "image side": f"{generator.image_size}px",
    }
    append_result("diffusion: sampling speed", row)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["train", "step", "sample"])
    parser.add_argument("--steps", type=int, help="training steps (default: the config's)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model_ref = None
        if args.only in (None, "train"):
            row, model_ref = bench_train(args.steps, folder)
            print(json.dumps(row, indent=2))
        if args.only in (None, "step"):
            print(json.dumps(bench_step(folder), indent=2))
        if args.only in (None, "sample"):
            if model_ref is None:  # speed does not depend on quality: a short run will do
                from lmforge.train.loop import train

                config = _config([f"train.max_steps={args.steps or 20}"], folder / "sample")
                model_ref = str(train(config, track=False).model_dir)
            print(json.dumps(bench_sample(model_ref), indent=2))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
