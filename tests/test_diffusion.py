"""Text-to-image diffusion: the diffusion task (text and label conditioning, epsilon and v
targets, the weight average, exact resume), generation with DDIM and DPM-Solver, Stable
Diffusion folders (a tiny random one built here, never fetched) with LoRA and merging,
and the image-generation evaluation, on tiny models."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from typer.testing import CliRunner

from lmforge.cli.main import app
from lmforge.config import RunConfig
from lmforge.errors import LmforgeError
from lmforge.evaluate.runner import evaluate_model
from lmforge.hub import resolve
from lmforge.hub.diffusion import GenerationSettings, ImageGenerator
from lmforge.hub.tiny import build_tiny_stable_diffusion
from lmforge.stats import frechet_distance
from lmforge.train.loop import TrainingInterrupted, train

runner = CliRunner()
# a two-level UNet on 8x8 grey pictures: a step takes milliseconds
TINY_UNET = {"image_size": 8, "image_channels": 1, "block_channels": [8, 16],
             "attention_head_dim": 8}  # fmt: skip
SHADES = {"black": 0, "grey": 128, "white": 255}


@pytest.fixture(scope="module")
def shades(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of 12 noisy pictures in three shades with captions and labels, and a
    train.jsonl beside them (what the image-generation judge trains on)."""
    folder = tmp_path_factory.mktemp("shades")
    rng = np.random.default_rng(0)
    lines = []
    for number in range(12):
        shade = list(SHADES)[number % 3]
        noise = rng.integers(-30, 30, size=(8, 8, 3))
        pixels = np.clip(SHADES[shade] + noise, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{number}.png")
        lines.append(json.dumps({"image": f"{number}.png", "text": f"a {shade} square",
                                 "label": shade}))  # fmt: skip
    (folder / "train.jsonl").write_text("\n".join(lines) + "\n")
    (folder / "test.jsonl").write_text("\n".join(lines[:8]) + "\n")
    return folder


def _config(ref: Path | str, train_file: Path, out: Path, **sections: Any) -> RunConfig:
    task = {"name": "diffusion", **TINY_UNET, **sections.pop("task", {})}
    return RunConfig.model_validate({
        "model": {"ref": str(ref)},
        "task": task,
        "data": {"train": str(train_file), "validation": str(train_file), "format": "image_text",
                 **sections.pop("data", {})},
        "train": {"max_steps": 2, "batch_size": 6, "lr": 1e-3, **sections.pop("train", {})},
        "output": {"dir": str(out)},
        **sections,
    })  # fmt: skip


@pytest.fixture(scope="module")
def text_model(shades: Path, tiny_encoder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("diffusion-run")
    config = _config(tiny_encoder, shades / "train.jsonl", out,
                     train={"ema_decay": 0.9, "save_every": 2})  # fmt: skip
    return train(config, track=False).model_dir


@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_stable_diffusion(tmp_path_factory.mktemp("sd") / "tiny-sd")


# --- settings ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("task", "says"),
    [
        ({"image_size": 10, "block_channels": [8, 16, 16]}, "cannot be halved 2 times"),
        ({"block_channels": [8, 12]}, "multiples of 8"),
        ({"label_template": "no placeholder"}, "has no {label}"),
    ],
)
def test_bad_diffusion_settings_name_the_field(task: dict, says: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=re.escape(says)):
        _config("all-minilm-l6-v2", tmp_path / "x.jsonl", tmp_path, task=task)


def test_ema_with_fsdp_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"train\.ema_decay"):
        _config("m", tmp_path / "x.jsonl", tmp_path, train={"ema_decay": 0.9, "strategy": "fsdp"})


# --- training ----------------------------------------------------------------------------


def test_a_text_model_trains_into_a_pipeline_folder_holding_the_average(
    text_model: Path,
) -> None:
    assert resolve(str(text_model)).kind == "diffusion"
    index = json.loads((text_model / "model_index.json").read_text())
    assert {"unet", "scheduler", "text_encoder", "tokenizer"} <= set(index)
    settings = json.loads((text_model / "lmforge_diffusion.json").read_text())
    assert settings == {"conditioning": "text", "text_padding": "mask", "labels": [],
                        "image_size": 8, "image_channels": 1}  # fmt: skip
    # the saved UNet is the weight average, not the last step's weights
    run_dir = text_model.parent
    saved = load_file(text_model / "unet" / "diffusion_pytorch_model.safetensors")
    checkpoint = sorted((run_dir / "checkpoints").glob("step-*"))[-1]
    average, last = (
        load_file(checkpoint / "ema.safetensors"),
        load_file(checkpoint / "trainable.safetensors"),
    )
    name = "conv_in.weight"
    assert torch.equal(saved[name], average[name]) and not torch.equal(saved[name], last[name])


def test_the_average_follows_diffusers_warmup() -> None:
    from lmforge.train.ema import WeightAverage

    layer = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        layer.weight.fill_(0.0)
    average = WeightAverage(layer, decay=0.99)
    with torch.no_grad():
        layer.weight.fill_(1.0)
    average.update(step=1)  # decay min(0.99, 2/11)
    assert float(average.averages[0]) == pytest.approx(1 - 2 / 11)
    with average.applied():
        assert float(layer.weight.detach()) == pytest.approx(1 - 2 / 11)
    assert float(layer.weight.detach()) == 1.0


def test_an_interrupted_run_resumes_to_the_same_weights_and_average(
    shades: Path, tiny_encoder: Path, tmp_path: Path
) -> None:
    steps = {"max_steps": 4, "save_every": 2, "batch_size": 4, "ema_decay": 0.9}
    data = shades / "train.jsonl"
    whole = train(_config(tiny_encoder, data, tmp_path / "whole", train=steps), track=False)

    def stop_at_two(step: int, total: int, text: str) -> None:
        if step == 2:
            raise KeyboardInterrupt

    config = _config(tiny_encoder, data, tmp_path / "halves", train=steps)
    with pytest.raises(TrainingInterrupted, match="--resume"):
        train(config, track=False, progress=stop_at_two)
    resumed = train(config, track=False, resume=tmp_path / "halves")
    assert resumed.final_loss == pytest.approx(whole.final_loss, rel=1e-6)
    name = "unet/diffusion_pytorch_model.safetensors"
    first, second = load_file(whole.model_dir / name), load_file(resumed.model_dir / name)
    assert all(torch.allclose(first[k], second[k], atol=1e-6) for k in first)


def test_the_noise_of_an_example_does_not_depend_on_its_batch(
    shades: Path, tiny_encoder: Path, tmp_path: Path
) -> None:
    from lmforge.tasks import get_task

    config = _config(tiny_encoder, shades / "train.jsonl", tmp_path)
    task = get_task("diffusion").configured(config)
    parts = task.load_processor(tiny_encoder)
    examples = [{"input_ids": [101, 102], "pixel_values": torch.zeros(1, 8, 8), "index": i}
                for i in range(4)]  # fmt: skip
    both = task.collate(examples, parts, seed=7)
    alone = task.collate(examples[2:3], parts, seed=7)
    assert torch.equal(both["noise"][2], alone["noise"][0])
    assert both["timesteps"][2] == alone["timesteps"][0]
    assert not torch.equal(both["noise"][0], both["noise"][1])


def test_v_prediction_and_label_conditioning_train_and_generate(
    shades: Path, tiny_encoder: Path, tmp_path: Path
) -> None:
    task = {"conditioning": "label", "prediction_type": "v_prediction"}
    config = _config(tiny_encoder, shades / "train.jsonl", tmp_path / "run", task=task,
                     data={"format": "image_label"})  # fmt: skip
    result = train(config, track=False)
    assert np.isfinite(result.final_loss)
    assert not (result.model_dir / "text_encoder").exists()  # labels need no text encoder
    generator = ImageGenerator(str(result.model_dir))
    assert generator.labels == ["black", "grey", "white"]
    images = generator.generate(["white", "a grey"], GenerationSettings(steps=3, seed=1))
    assert [image.size for image in images] == [(8, 8)] * 2 and images[0].mode == "L"
    with pytest.raises(LmforgeError, match="one of its labels"):
        generator.generate(["purple"], GenerationSettings(steps=2))
    assert generator.parts.scheduler.config.prediction_type == "v_prediction"


# --- generation --------------------------------------------------------------------------


def test_a_seed_gives_the_same_images_whatever_the_batch(text_model: Path) -> None:
    generator = ImageGenerator(str(text_model))
    steps: list[tuple[int, int]] = []
    settings = GenerationSettings(steps=4, guidance=3.0, seed=5)
    pair = generator.generate(["a grey square", "a white square"], settings,
                              on_step=lambda done, total: steps.append((done, total)))  # fmt: skip
    assert steps == [(1, 4), (2, 4), (3, 4), (4, 4)]
    again = generator.generate(["a grey square", "a white square"], settings)
    second = generator.generate(["a white square"], GenerationSettings(steps=4, seed=6))
    assert np.array_equal(np.asarray(pair[0]), np.asarray(again[0]))
    assert np.array_equal(np.asarray(pair[1]), np.asarray(second[0]))
    dpm = generator.generate(["a grey square"], GenerationSettings(steps=4, seed=5, sampler="dpm"))
    assert dpm[0].size == (8, 8)
    with pytest.raises(LmforgeError, match="sampler"):
        generator.generate(["x"], GenerationSettings(sampler="euler"))


def test_images_generate_writes_png_files(text_model: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["images", "generate", str(text_model), "a black square",
                                 "--n", "3", "--steps", "2", "--seed", "7",
                                 "--out", str(tmp_path / "out"), "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    written = json.loads(result.stdout)["images"]
    assert [Path(p).name for p in written] == ["000007.png", "000008.png", "000009.png"]
    assert Image.open(written[0]).size == (8, 8)
    result = runner.invoke(app, ["images", "generate", "all-minilm-l6-v2", "x"])
    assert result.exit_code != 0 and "needs a diffusion model" in result.output


# --- Stable Diffusion folders -----------------------------------------------------------------


def test_a_stable_diffusion_folder_loads_and_a_missing_part_is_named(
    tiny_sd: Path, tmp_path: Path
) -> None:
    generator = ImageGenerator(str(tiny_sd))
    assert generator.parts.settings.text_padding == "max_length"
    images = generator.generate(["a red square"], GenerationSettings(steps=2, sampler="dpm"))
    assert images[0].size == (16, 16) and images[0].mode == "RGB"
    broken = tmp_path / "broken"
    shutil.copytree(tiny_sd, broken)
    shutil.rmtree(broken / "vae")
    with pytest.raises(LmforgeError, match=r"part 'vae' \(AutoencoderKL\) is missing"):
        resolve(str(broken))


def test_lora_on_a_stable_diffusion_unet_saves_loads_in_peft_and_merges(
    tiny_sd: Path, shades: Path, tmp_path: Path
) -> None:
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from peft import PeftModel

    from lmforge.train.merge import merge_adapter

    config = _config(tiny_sd, shades / "train.jsonl", tmp_path / "lora", task={},
                     method={"name": "lora", "lora_r": 4}, train={"lr": 1e-2})  # fmt: skip
    result = train(config, track=False)
    adapter = result.model_dir
    assert (adapter / "adapter_config.json").is_file()
    assert not (adapter / "text_encoder").exists() and not (adapter / "unet").exists()
    resolved = resolve(str(adapter))
    assert (resolved.kind, resolved.model_kind) == ("adapter", "diffusion")
    # plain peft puts it on the base's UNet
    unet = UNet2DConditionModel.from_pretrained(tiny_sd, subfolder="unet")
    assert isinstance(PeftModel.from_pretrained(unet, adapter), PeftModel)
    ImageGenerator(str(adapter)).generate(["a grey square"], GenerationSettings(steps=2))

    merged = merge_adapter(adapter, tmp_path / "merged")
    pipeline = StableDiffusionPipeline.from_pretrained(merged, local_files_only=True)
    weights = load_file(merged / "unet" / "diffusion_pytorch_model.safetensors")
    before = load_file(tiny_sd / "unet" / "diffusion_pytorch_model.safetensors")
    name = next(k for k in weights if k.endswith("attn2.to_q.weight"))
    assert not torch.equal(weights[name], before[name])
    assert pipeline.unet.config.sample_size == 8


def test_full_fine_tuning_a_stable_diffusion_folder_writes_one_diffusers_loads(
    tiny_sd: Path, shades: Path, tmp_path: Path
) -> None:
    from diffusers import StableDiffusionPipeline

    config = _config(tiny_sd, shades / "train.jsonl", tmp_path / "full", task={})
    model_dir = train(config, track=False).model_dir
    pipeline = StableDiffusionPipeline.from_pretrained(model_dir, local_files_only=True)
    assert pipeline.vae is not None and (model_dir / "lmforge_config.yaml").is_file()
    with pytest.raises(LmforgeError, match=r"task\.conditioning"):
        train(_config(tiny_sd, shades / "train.jsonl", tmp_path / "x",
                      task={"conditioning": "label"}, data={"format": "image_label"}),
              track=False)  # fmt: skip


def test_lora_on_a_unet_built_from_config_is_refused(
    shades: Path, tiny_encoder: Path, tmp_path: Path
) -> None:
    config = _config(tiny_encoder, shades / "train.jsonl", tmp_path, method={"name": "lora"})
    with pytest.raises(LmforgeError, match=r"method\.name: lora adapts a pretrained UNet"):
        train(config, track=False)


# --- evaluation --------------------------------------------------------------------------


def test_frechet_distance_matches_the_closed_form_for_gaussians() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, size=(20_000, 2))
    b = rng.normal(0, 2, size=(20_000, 2)) + np.array([3.0, 0.0])
    # |mu|^2 + tr(I + 4I - 2 * 2I) = 9 + 2
    assert frechet_distance(a, b) == pytest.approx(11.0, rel=0.03)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)


def test_image_generation_eval_reports_accuracy_and_distances_with_a_grid(
    text_model: Path, shades: Path
) -> None:
    result = evaluate_model(str(text_model), shades / "test.jsonl", "image-generation")
    assert set(result.metrics) == {"accuracy", "judge_accuracy", "frechet_distance",
                                   "frechet_floor"}  # fmt: skip
    assert result.metrics["judge_accuracy"] == 1.0  # three shades: an easy judge
    assert 0.0 <= result.metrics["accuracy"] <= 1.0
    low, high = result.intervals["frechet_floor"]
    assert low <= high
    row = result.examples[0]
    assert row["prompt"] == "a black square" and Path(row["generated_image"]).is_file()
    from lmforge.track import get_client

    artifacts = get_client().list_artifacts(result.run_id)
    assert "samples.png" in {artifact.path for artifact in artifacts}


def test_the_judge_needs_a_train_file_beside_the_data(
    text_model: Path, shades: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for number in range(4):
        shutil.copy(shades / f"{number}.png", elsewhere)
    lines = (shades / "test.jsonl").read_text().splitlines()[:4]
    (elsewhere / "test.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(LmforgeError, match=r"train\.jsonl"):
        evaluate_model(str(text_model), elsewhere / "test.jsonl", "image-generation", track=False)


def test_a_registered_diffusion_model_resolves_draws_and_is_described(
    shades: Path, tiny_encoder: Path, tmp_path: Path
) -> None:
    output = {"dir": str(tmp_path / "run"), "register_as": "tiny-painter"}
    train(_config(tiny_encoder, shades / "train.jsonl", tmp_path / "run", output=output))
    assert resolve("registry:tiny-painter/1").kind == "diffusion"
    images = ImageGenerator("registry:tiny-painter/1").generate(
        ["a grey square"], GenerationSettings(steps=2)
    )
    assert images[0].size == (8, 8)
    shown = runner.invoke(app, ["models", "show", "registry:tiny-painter/1", "--json"])
    assert shown.exit_code == 0, shown.output
    info = json.loads(shown.stdout)
    assert info["architecture"] == "LmforgeDiffusionPipeline" and info["parameters"] > 0


def test_a_clip_models_text_tower_conditions_and_scores_the_images(
    shades: Path, tiny_encoder: Path, tmp_path: Path
) -> None:
    clip = RunConfig.model_validate({
        "model": {"ref": str(tiny_encoder)},
        "task": {"name": "clip", "image_size": 8, "patch_size": 4, "vision_width": 16,
                 "vision_layers": 1, "vision_heads": 2, "projection_dim": 8},
        "data": {"train": str(shades / "train.jsonl")},
        "train": {"max_steps": 2, "batch_size": 6, "lr": 1e-2},
        "output": {"dir": str(tmp_path / "clip")},
    })  # fmt: skip
    clip_dir = train(clip, track=False).model_dir
    painter = train(_config(clip_dir, shades / "train.jsonl", tmp_path / "painter"),
                    track=False).model_dir  # fmt: skip
    assert json.loads((painter / "model_index.json").read_text())["text_encoder"][1] == "BertModel"
    result = evaluate_model(str(painter), shades / "test.jsonl", "image-generation",
                            track=False, clip_model=str(clip_dir))  # fmt: skip
    for name in ("clip_score", "clip_score_real"):
        assert 0.0 <= result.metrics[name] <= 100.0
    with pytest.raises(LmforgeError, match="only image-generation"):
        evaluate_model(str(painter), shades / "test.jsonl", "zero-shot", clip_model="x")


def test_a_pipeline_trains_judges_and_registers_a_diffusion_model(
    shades: Path, tiny_encoder: Path, tmp_path: Path
) -> None:
    import yaml

    from lmforge.pipeline.load import load_pipeline
    from lmforge.pipeline.runner import run_pipeline

    spec = {"name": "painter", "steps": [
        {"name": "train", "type": "train", "with": {"run": {
            "model": {"ref": str(tiny_encoder)}, "task": {"name": "diffusion", **TINY_UNET},
            "data": {"train": str(shades / "train.jsonl"), "format": "image_text"},
            "train": {"max_steps": 2, "batch_size": 6, "ema_decay": 0.9}}}},
        {"name": "eval", "type": "eval", "with": {
            "model": "${{ steps.train.outputs.model }}", "data": str(shades / "test.jsonl"),
            "task": "image-generation"}},
        {"name": "register", "type": "register", "with": {
            "model": "${{ steps.train.outputs.model }}", "name": "pipeline-painter",
            "metrics": "${{ steps.eval.outputs.metrics }}", "eval_step": "eval",
            "gate": {"alias": "production", "metrics": {"accuracy": 0.0}}}},
    ]}  # fmt: skip
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    result = run_pipeline(load_pipeline(tmp_path / "pipeline.yaml"))
    assert [record.status for record in result.steps] == ["ran", "ran", "ran"]
    assert result.outputs("eval")["metrics"]["judge_accuracy"] == 1.0
    assert result.outputs("register")["promoted"] is True
    assert resolve("registry:pipeline-painter@production").kind == "diffusion"
