"""Images in the engine: image data formats, the bundled digits, the clip task, and the
image-retrieval and zero-shot evaluations, on tiny models built here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from lmforge.cli.main import app
from lmforge.config import RunConfig
from lmforge.data.digits import caption, digits_records, measure
from lmforge.data.images import ImageError, decode_image, open_image
from lmforge.data.records import DataError, read_records
from lmforge.errors import LmforgeError
from lmforge.evaluate.runner import evaluate_model
from lmforge.hub import resolve
from lmforge.stats import retrieval_ranks, retrieval_summary
from lmforge.tasks import EncodeOptions, get_task
from lmforge.train.loop import train

# a small ViT and head so a training step takes milliseconds
TINY_TOWER = {"image_size": 8, "patch_size": 4, "vision_width": 16, "vision_layers": 1,
              "vision_heads": 2, "projection_dim": 8}  # fmt: skip


def _picture(path: Path, value: int, mode: str = "L") -> Path:
    image = Image.new(mode, (8, 8), value if mode == "L" else (value, 0, 0, 128))
    image.save(path)
    return path


@pytest.fixture(scope="module")
def captioned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A JSON Lines file of 12 images (relative paths) and captions, 4 captions repeated."""
    folder = tmp_path_factory.mktemp("captioned")
    (folder / "pics").mkdir()
    lines = []
    for index in range(12):
        _picture(folder / "pics" / f"{index}.png", 20 * index)
        text = ["a dark square", "a light square", "a grey square", "a pale square"][index % 4]
        lines.append(json.dumps({"image": f"pics/{index}.png", "text": text,
                                 "label": text.split()[1]}))  # fmt: skip
    (folder / "data.jsonl").write_text("\n".join(lines) + "\n")
    return folder / "data.jsonl"


def _run_config(ref: Path | str, data: Path, out: Path, **sections: Any) -> RunConfig:
    task = {"name": "clip", **TINY_TOWER, **sections.pop("task", {})}
    return RunConfig.model_validate({
        "model": {"ref": str(ref)},
        "task": task,
        "data": {"train": str(data), "validation": str(data)},
        "train": {"max_steps": 2, "batch_size": 6, "lr": 1e-2, **sections.pop("train", {})},
        "output": {"dir": str(out)},
        **sections,
    })  # fmt: skip


# --- images and data formats ---------------------------------------------------------------


def test_grayscale_palette_and_transparent_images_become_rgb(tmp_path: Path) -> None:
    grey = open_image(_picture(tmp_path / "grey.png", 200))
    see_through = open_image(_picture(tmp_path / "rgba.png", 255, mode="RGBA"))
    Image.new("P", (4, 4), 3).save(tmp_path / "palette.gif")
    assert grey.mode == see_through.mode == open_image(tmp_path / "palette.gif").mode == "RGB"
    assert grey.getpixel((0, 0)) == (200, 200, 200)
    # half-transparent red over white, as a viewer shows it
    assert see_through.getpixel((0, 0)) == (255, 127, 127)


def test_a_corrupt_or_missing_image_is_an_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(ImageError, match=r"broken\.png: not an image file"):
        open_image(tmp_path / "broken.png")
    with pytest.raises(ImageError, match=r"gone\.png: no such image file"):
        open_image(tmp_path / "gone.png")
    with pytest.raises(ImageError, match="upload: not an image"):
        decode_image(b"hello", name="upload")


def test_image_text_rows_resolve_paths_against_the_file(captioned: Path) -> None:
    records, report = read_records(captioned)
    assert report.format == "image_text" and len(records) == 12
    assert records[0] == {"image": str(captioned.parent / "pics" / "0.png"),
                          "text": "a dark square"}  # fmt: skip
    labeled, report = read_records(captioned, format="image_label")
    assert report.format == "image_label" and labeled[1]["label"] == "light"


@pytest.mark.parametrize("suffix", [".json", ".csv", ".parquet"])
def test_image_rows_read_from_every_file_type(tmp_path: Path, suffix: str) -> None:
    from tests.test_data_records import write

    _picture(tmp_path / "a.png", 5)
    rows = [{"image": "a.png", "caption": "a dot", "kind": "dot"}]
    data = write(tmp_path / f"rows{suffix}", rows)
    records, _ = read_records(data, format="image_text", fields={"text": "caption"})
    assert records == [{"image": str(tmp_path / "a.png"), "text": "a dot"}]
    records, _ = read_records(data, format="image_label", fields={"label": "kind"})
    assert records == [{"image": str(tmp_path / "a.png"), "label": "dot"}]


def test_a_missing_image_names_the_file_and_line_or_is_skipped(tmp_path: Path) -> None:
    _picture(tmp_path / "ok.png", 10)
    (tmp_path / "bad.png").write_text("not a picture")
    rows = [{"image": "ok.png", "text": "fine"}, {"image": "nowhere.png", "text": "gone"},
            {"image": "bad.png", "text": "broken"}]  # fmt: skip
    data = tmp_path / "data.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(DataError) as error:
        read_records(data)
    message = str(error.value)
    assert f"{data} line 2: field 'image': {tmp_path / 'nowhere.png'}: no such image" in message
    assert f"{data} line 3: field 'image': {tmp_path / 'bad.png'}: not an image" in message
    records, report = read_records(data, on_error="skip")
    assert [r["text"] for r in records] == ["fine"]
    assert report.skip_reasons == {"missing image": 1, "unreadable image": 1}


def test_image_folders_read_as_captions_or_one_folder_per_label(tmp_path: Path) -> None:
    for label in ("cats", "dogs"):
        (tmp_path / "labels" / label).mkdir(parents=True)
        _picture(tmp_path / "labels" / label / "a.png", 1)
        _picture(tmp_path / "labels" / label / "b.jpg", 2)
    records, report = read_records(tmp_path / "labels")
    assert report.format == "image_label"
    assert [(Path(r["image"]).name, r["label"]) for r in records] == [
        ("a.png", "cats"), ("b.jpg", "cats"), ("a.png", "dogs"), ("b.jpg", "dogs")]  # fmt: skip
    (tmp_path / "captions").mkdir()
    _picture(tmp_path / "captions" / "x.png", 3)
    (tmp_path / "captions" / "captions.jsonl").write_text('{"image": "x.png", "text": "x"}\n')
    records, report = read_records(tmp_path / "captions")
    assert report.format == "image_text" and records[0]["text"] == "x"
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"neither captions\.jsonl"):
        read_records(tmp_path / "empty")


# --- the bundled digits ---------------------------------------------------------------------


def test_slant_is_positive_when_the_top_leans_right() -> None:
    right = np.zeros((8, 8))
    for row in range(8):
        right[row, 7 - row] = 16  # a stroke from bottom left to top right
    assert measure(right)[1] > 0.9
    assert measure(right[:, ::-1])[1] < -0.9
    upright = np.zeros((8, 8))
    upright[:, 3] = 16
    assert measure(upright) == (128.0, 0.0)


def test_captions_say_the_digit_and_its_measured_bands() -> None:
    assert caption("seven", "thick", "right-leaning") == "a thick, right-leaning seven"
    assert caption("one", "", "upright") == "an upright one"
    records = digits_records()
    assert len(records) == 1797
    sevens = [r for r in records if r["digit"] == 7]
    thick = [r["ink"] for r in sevens if r["ink_band"] == "thick"]
    thin = [r["ink"] for r in sevens if r["ink_band"] == "thin"]
    assert min(thick) > max(thin)  # bands are terciles of the digit's own ink
    assert abs(len(thick) - len(sevens) / 3) <= 2
    assert all(r["text"].endswith(f" {r['label']}") for r in records)


def test_bundled_digits_are_written_once_split_by_image() -> None:
    from lmforge.data.bundled import dataset_path, list_bundled

    assert list_bundled()["digits"] == ["train", "validation", "test"]
    splits = {s: [json.loads(line) for line in dataset_path("digits", s).open()]
              for s in ("train", "validation", "test")}  # fmt: skip
    assert {s: len(rows) for s, rows in splits.items()} == {
        "train": 1258, "validation": 270, "test": 269}  # fmt: skip
    images = [{row["image"] for row in rows} for rows in splits.values()]
    assert not (images[0] & images[1] or images[0] & images[2] or images[1] & images[2])
    folder = dataset_path("digits", "test").parent
    assert (folder / "README.md").read_text().startswith("# digits")
    picture = open_image(folder / splits["test"][0]["image"])
    assert picture.size == (8, 8)


# --- retrieval metrics ----------------------------------------------------------------------


def _open_clip_metrics(logits_per_image: torch.Tensor, logits_per_text: torch.Tensor) -> dict:
    """open_clip's get_clip_metrics (src/open_clip_train/train.py), as written there."""
    metrics = {}
    logits = {"image_to_text": logits_per_image, "text_to_image": logits_per_text}
    ground_truth = torch.arange(len(logits_per_text)).view(-1, 1)
    for name, logit in logits.items():
        ranking = torch.argsort(logit, descending=True)
        preds = torch.where(ranking == ground_truth)[1].numpy()
        metrics[f"{name}_mean_rank"] = preds.mean() + 1
        metrics[f"{name}_median_rank"] = np.floor(np.median(preds)) + 1
        for k in [1, 5, 10]:
            metrics[f"{name}_R@{k}"] = np.mean(preds < k)
    return metrics


def test_retrieval_metrics_are_open_clips() -> None:
    rng = np.random.default_rng(0)
    similarity = rng.normal(size=(40, 40)) + 2 * np.eye(40)  # captions x images
    ours = retrieval_summary(retrieval_ranks(similarity, np.arange(40)))
    theirs = _open_clip_metrics(torch.tensor(similarity.T), torch.tensor(similarity))
    assert {k: ours[k] for k in theirs} == pytest.approx(theirs)
    # with distinct captions the attribute match is the exact match
    assert ours["text_to_image_attribute_R@5"] == ours["text_to_image_R@5"]


def test_attribute_match_counts_any_item_with_the_query_caption() -> None:
    similarity = np.array([[0.1, 0.9, 0.0], [0.2, 0.1, 0.8], [0.0, 0.3, 0.7]])
    ranks = retrieval_ranks(similarity, np.array([0, 0, 1]))  # captions 0 and 1 are the same
    assert ranks["text_to_image_rank"].tolist() == [2, 3, 1]
    assert ranks["text_to_image_attribute_rank"].tolist() == [1, 2, 1]


# --- the clip task --------------------------------------------------------------------------


def test_clip_loss_is_clips_when_captions_differ_and_shares_repeats() -> None:
    from transformers.models.clip.modeling_clip import image_text_contrastive_loss

    task = get_task("clip")
    logits = torch.randn(5, 5)  # captions x images
    task._logits = lambda model, batch: logits  # type: ignore[method-assign]
    distinct = {"caption_id": torch.arange(5)}
    reference = float(image_text_contrastive_loss(logits))  # transformers' CLIP loss (a mean)
    assert float(task.loss(None, distinct)) / 5 == pytest.approx(reference, rel=1e-6)
    # captions 0 and 1 are the same caption: each has both of their images as targets
    positives = {0: [0, 1], 1: [0, 1], 2: [2], 3: [3], 4: [4]}
    expected = 0.0
    for i, targets in positives.items():
        by_row = -torch.log_softmax(logits[i], 0)[targets].mean()
        by_column = -torch.log_softmax(logits[:, i], 0)[targets].mean()
        expected += float(by_row + by_column) / 2
    repeated = {"caption_id": torch.tensor([0, 0, 1, 2, 3])}
    assert float(task.loss(None, repeated)) == pytest.approx(expected, rel=1e-5)


def test_clip_trains_saves_a_plain_transformers_model_and_evaluates(
    captioned: Path, tiny_encoder: Path, tmp_path: Path
) -> None:
    from transformers import AutoModel, AutoProcessor

    result = train(_run_config(tiny_encoder, captioned, tmp_path / "run"), track=False)
    assert result.steps == 2 and np.isfinite(result.final_loss)
    assert {"text_to_image_attribute_R@5", "logit_scale"} <= set(result.eval_metrics)
    model_dir = result.model_dir
    assert resolve(str(model_dir)).kind == "clip"
    model = AutoModel.from_pretrained(model_dir)  # plain transformers, no lmforge code
    processor = AutoProcessor.from_pretrained(model_dir)
    assert type(model).__name__ == "VisionTextDualEncoderModel"
    inputs = processor(text=["a dark square"], images=[Image.new("RGB", (8, 8))],
                       return_tensors="pt")  # fmt: skip
    assert model(**inputs).logits_per_text.shape == (1, 1)

    retrieval = evaluate_model(str(model_dir), captioned, "image-retrieval", track=False)
    assert set(retrieval.metrics) >= {"text_to_image_R@1", "image_to_text_median_rank",
                                      "text_to_image_attribute_R@10"}  # fmt: skip
    # 12 images, 4 captions: the attribute recall at 10 cannot miss
    assert retrieval.metrics["text_to_image_attribute_R@10"] == 1.0
    assert retrieval.examples[0]["image"] == str(captioned.parent / "pics" / "0.png")
    zero_shot = evaluate_model(str(model_dir), captioned, "zero-shot", track=False,
                               label_templates=["a {label} square"])  # fmt: skip
    assert set(zero_shot.metrics) == {"accuracy", "macro_f1"}
    assert {row["predicted"] for row in zero_shot.examples} <= {"dark", "light", "grey", "pale"}


def test_lora_and_frozen_towers_train_only_what_they_say(
    captioned: Path, tiny_encoder: Path, tmp_path: Path
) -> None:
    from transformers import AutoModel

    before = AutoModel.from_pretrained(tiny_encoder).state_dict()
    config = _run_config(tiny_encoder, captioned, tmp_path / "run",
                         task={"frozen_towers": ["text"]}, method={"name": "lora"})  # fmt: skip
    result = train(config, track=False)
    assert not (result.model_dir / "adapter_config.json").exists()  # merged on save
    saved = AutoModel.from_pretrained(result.model_dir)
    text = saved.text_model.state_dict()
    assert all(torch.equal(text[k], before[k]) for k in before if k in text)
    # the image tower was built here, so it trained whole under LoRA
    assert result.trainable_parameters > sum(
        p.numel() for p in saved.vision_model.parameters()) > 0  # fmt: skip


def test_a_local_clip_checkpoint_loads_by_path_and_fine_tunes_with_lora(
    captioned: Path, tiny_encoder: Path, tmp_path: Path
) -> None:
    from transformers import (
        AutoModel,
        AutoProcessor,
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        CLIPProcessor,
    )

    from lmforge.hub import zoo_tokenizer

    tokenizer = zoo_tokenizer("all-minilm-l6-v2")
    config = CLIPConfig(
        text_config={"vocab_size": len(tokenizer), "hidden_size": 32, "intermediate_size": 64,
                     "num_hidden_layers": 2, "num_attention_heads": 2,
                     "max_position_embeddings": 64, "eos_token_id": tokenizer.sep_token_id,
                     "pad_token_id": tokenizer.pad_token_id},
        vision_config={"image_size": 8, "patch_size": 4, "hidden_size": 32,
                       "intermediate_size": 64, "num_hidden_layers": 2,
                       "num_attention_heads": 2},
        projection_dim=16,
    )  # fmt: skip
    torch.manual_seed(0)
    checkpoint = tmp_path / "tiny-clip"
    CLIPModel(config).save_pretrained(checkpoint)
    image_processor = CLIPImageProcessor(size={"shortest_edge": 8},
                                         crop_size={"height": 8, "width": 8})  # fmt: skip
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(checkpoint)
    assert resolve(str(checkpoint)).kind == "clip"

    result = train(_run_config(checkpoint, captioned, tmp_path / "run",
                               method={"name": "lora"}), track=False)  # fmt: skip
    assert 0 < result.trainable_parameters < result.total_parameters
    tuned = CLIPModel.from_pretrained(result.model_dir)
    original = CLIPModel.from_pretrained(checkpoint)
    changed = [name for name, weight in tuned.state_dict().items()
               if not torch.equal(weight, original.state_dict()[name])]  # fmt: skip
    assert changed and all(("q_proj" in n or "k_proj" in n or "v_proj" in n
                            or "out_proj" in n) for n in changed)  # fmt: skip
    assert {n.split(".")[0] for n in changed} == {"text_model", "vision_model"}
    with pytest.raises(LmforgeError, match="vision_ref"):
        train(_run_config(checkpoint, captioned, tmp_path / "bad",
                          task={"vision_ref": str(checkpoint)}), track=False)  # fmt: skip
    # its vision tower and image processor beside a text encoder
    composed = train(_run_config(tiny_encoder, captioned, tmp_path / "composed",
                                 task={"vision_ref": str(checkpoint)}), track=False)  # fmt: skip
    assert type(AutoModel.from_pretrained(composed.model_dir).vision_model).__name__ == (
        "CLIPVisionModel")  # fmt: skip
    processor = AutoProcessor.from_pretrained(composed.model_dir)
    assert type(processor.image_processor).__name__.startswith("CLIPImageProcessor")


def test_eval_names_a_missing_image_and_refuses_templates_for_other_tasks(
    captioned: Path, tmp_path: Path
) -> None:
    data = tmp_path / "eval.jsonl"
    data.write_text('{"image": "nope.png", "text": "x"}\n')
    with pytest.raises(LmforgeError, match=r"eval\.jsonl:1: image 'nope.png': no such file"):
        evaluate_model("unused", data, "image-retrieval", track=False)
    with pytest.raises(LmforgeError, match="only zero-shot"):
        evaluate_model("unused", captioned, "image-retrieval", track=False,
                       label_templates=["a {label}"])  # fmt: skip


def test_images_classify_ranks_the_labels(
    captioned: Path, tiny_encoder: Path, tmp_path: Path
) -> None:
    result = train(_run_config(tiny_encoder, captioned, tmp_path / "run"), track=False)
    picture = captioned.parent / "pics" / "3.png"
    ran = CliRunner().invoke(app, ["images", "classify", str(result.model_dir), str(picture),
                                   "--labels", "dark, light,grey", "--json"])  # fmt: skip
    assert ran.exit_code == 0, ran.output
    (answer,) = json.loads(ran.output)
    probabilities = [entry["probability"] for entry in answer["top"]]
    assert sorted(entry["label"] for entry in answer["top"]) == ["dark", "grey", "light"]
    assert probabilities == sorted(probabilities, reverse=True)
    assert sum(probabilities) == pytest.approx(1.0, abs=1e-5)
    ran = CliRunner().invoke(app, ["images", "classify", str(result.model_dir), str(picture),
                                   "--labels", "dark"])  # fmt: skip
    assert ran.exit_code == 2 and "at least two" in ran.output


def test_an_interrupted_clip_run_resumes_to_the_same_weights(
    captioned: Path, tiny_encoder: Path, tmp_path: Path
) -> None:
    from safetensors.torch import load_file

    from lmforge.train.loop import TrainingInterrupted

    steps = {"max_steps": 4, "save_every": 2, "batch_size": 4}
    whole = train(_run_config(tiny_encoder, captioned, tmp_path / "whole", train=steps),
                  track=False)  # fmt: skip

    def stop_at_two(step: int, total: int, text: str) -> None:
        if step == 2:
            raise KeyboardInterrupt

    config = _run_config(tiny_encoder, captioned, tmp_path / "halves", train=steps)
    with pytest.raises(TrainingInterrupted, match="--resume"):
        train(config, track=False, progress=stop_at_two)
    resumed = train(config, track=False, resume=tmp_path / "halves")
    assert resumed.final_loss == pytest.approx(whole.final_loss, rel=1e-6)
    first = load_file(whole.model_dir / "model.safetensors")
    second = load_file(resumed.model_dir / "model.safetensors")
    assert all(torch.allclose(first[k], second[k], atol=1e-6) for k in first)


def test_clip_trains_on_two_processes(captioned: Path, tiny_encoder: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    import yaml

    config = _run_config(tiny_encoder, captioned, tmp_path / "run", train={"batch_size": 3})
    config_file = tmp_path / "clip.yaml"
    config_file.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    done = subprocess.run(
        [sys.executable, "-m", "lmforge.cli.main", "train", str(config_file), "--nproc", "2",
         "--no-track"], capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    # each process contrasts its own 3 pairs; the steps and the saved model are the run's
    assert metrics["steps"] == 2 and np.isfinite(metrics["final_loss"])
    assert resolve(str(tmp_path / "run" / "model")).kind == "clip"


def test_a_frozen_text_tower_is_run_once_per_caption_without_dropout(
    captioned: Path, tiny_encoder: Path
) -> None:
    from lmforge.hub.clip import text_features

    config = _run_config(tiny_encoder, captioned, captioned.parent / "unused",
                         task={"frozen_towers": ["text"]})  # fmt: skip
    task = get_task("clip").configured(config)
    processor = task.load_processor(tiny_encoder)
    model = task.build_model(str(tiny_encoder), labels=[], dtype=torch.float32)
    records, _ = read_records(captioned)
    examples, _ = task.encode(records, processor, EncodeOptions(max_length=64))
    batch = task.collate(examples, processor, seed=0)
    model.train()  # dropout on everywhere else: the cached tower still runs in eval mode
    cached = task._text_features(model, batch)
    assert len(task._frozen_text) == 4  # 12 captions, 4 distinct
    assert model.text_model.training  # put back as the loop had it
    model.eval()
    assert torch.allclose(cached, text_features(model, batch), atol=1e-5)


def test_the_onnx_encoders_give_the_models_embeddings(
    captioned: Path, tiny_encoder: Path, tmp_path: Path
) -> None:
    from lmforge.hub.clip import ImageEncoder, QueryEncoder, embed_images, embed_texts, load_clip

    result = train(_run_config(tiny_encoder, captioned, tmp_path / "run"), track=False)
    model, processor = load_clip(str(result.model_dir))
    encoder = QueryEncoder(model, processor)
    queries = ["a dark square", "a very pale and rather large square, seen from far away", "x"]
    for query in queries:  # the first one is traced; the others are longer and shorter
        assert np.allclose(encoder(query), embed_texts(model, processor, [query]), atol=1e-5)
    assert encoder.tower.onnx is not None  # a BERT tower exports to ONNX
    pictures = [open_image(Path(r["image"])) for r in read_records(captioned)[0]]
    images = ImageEncoder(model, processor)
    for batch in (pictures[:3], pictures[3:]):  # the batch size varies
        assert np.allclose(images(batch), embed_images(model, processor, batch), atol=1e-5)
    assert images.tower.onnx is not None
    one_thread = images.embed(images.pixels(pictures), threads=1)
    assert np.allclose(one_thread, embed_images(model, processor, pictures), atol=1e-5)


def test_a_text_tower_built_from_config_trains_from_random_weights(
    captioned: Path, tiny_encoder: Path, tmp_path: Path
) -> None:
    from transformers import AutoModel

    built = {"text_layers": 1, "text_width": 32, "text_heads": 2}
    result = train(_run_config(tiny_encoder, captioned, tmp_path / "run", task=built),
                   track=False)  # fmt: skip
    saved = AutoModel.from_pretrained(result.model_dir)
    text = saved.text_model
    assert (text.config.num_hidden_layers, text.config.hidden_size) == (1, 32)
    assert text.config.vocab_size == AutoModel.from_pretrained(tiny_encoder).config.vocab_size
    assert result.trainable_parameters == sum(p.numel() for p in saved.parameters())
    lora = _run_config(tiny_encoder, captioned, tmp_path / "lora", task=built,
                       method={"name": "lora"})  # fmt: skip
    with pytest.raises(LmforgeError, match="both towers are built from config"):
        train(lora, track=False)
    with pytest.raises(ValueError, match=r"set task\.text_layers too"):
        _run_config(tiny_encoder, captioned, tmp_path / "x", task={"text_width": 32})


def test_a_registered_clip_model_resolves_and_evaluates(
    captioned: Path, tiny_encoder: Path, tmp_path: Path
) -> None:
    output = {"dir": str(tmp_path / "run"), "register_as": "tiny-clip"}
    config = _run_config(tiny_encoder, captioned, tmp_path / "run", output=output)
    train(config)  # tracked: registering needs the MLflow run
    assert resolve("registry:tiny-clip/1").kind == "clip"
    result = evaluate_model("registry:tiny-clip/1", captioned, "image-retrieval", track=False)
    assert result.metrics["text_to_image_attribute_R@10"] == 1.0


def test_an_upload_too_large_or_not_base64_is_a_400_naming_the_field(
    captioned: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import base64

    from lmforge.serve.api import images
    from lmforge.serve.errors import ApiError

    data = base64.b64encode((captioned.parent / "pics" / "0.png").read_bytes()).decode()
    assert images.decode_upload("data:image/png;base64," + data, "image").size == (8, 8)
    monkeypatch.setattr(images, "MAX_IMAGE_BYTES", 10)
    with pytest.raises(ApiError) as error:
        images.decode_upload(data, "input[0].image")
    assert error.value.status == 400 and error.value.param == "input[0].image"
    assert "the limit is 10" in error.value.message
