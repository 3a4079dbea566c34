"""Image indexes and image search served for real: the index's versions, the CLI, a
uvicorn server on loopback (/v1/images/search, images on /v1/classify) and the web page's
image-search box in headless Chromium, on a tiny text-image model trained here."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from lmforge.cli.main import app
from lmforge.config import RunConfig
from lmforge.errors import LmforgeError
from lmforge.hub.clip import embed_images
from lmforge.retrieve.images import ImageIndex, clip_for, list_image_indexes
from lmforge.train.loop import train
from tests.servers import lmforge_server, request
from tests.test_serve_web import CHROMIUM, FLAGS

runner = CliRunner()
SHADES = {"black": 0, "grey": 128, "white": 255}


@pytest.fixture(scope="module")
def pictures(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of 9 small pictures in three shades (each its own noise, so no two embed
    alike), with a captions.jsonl."""
    folder = tmp_path_factory.mktemp("pictures")
    rng = np.random.default_rng(0)
    lines = []
    for shade, value in SHADES.items():
        for number in range(3):
            name = f"{shade}-{number}.png"
            noise = rng.integers(-60, 60, size=(8, 8, 3))
            pixels = np.clip(value + noise, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / name)
            lines.append(json.dumps({"image": name, "text": f"a {shade} square"}))
    (folder / "captions.jsonl").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture(scope="module")
def clip_model(
    pictures: Path, tiny_encoder: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    config = RunConfig.model_validate({
        "model": {"ref": str(tiny_encoder)},
        "task": {"name": "clip", "image_size": 8, "patch_size": 4, "vision_width": 16,
                 "vision_layers": 1, "vision_heads": 2, "projection_dim": 8},
        "data": {"train": str(pictures)},
        "train": {"max_steps": 2, "batch_size": 9, "lr": 1e-2},
        "output": {"dir": str(tmp_path_factory.mktemp("clip-run"))},
    })  # fmt: skip
    return train(config, track=False).model_dir


def _base64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def _nearest(hits: list, image_id: str) -> bool:
    """Whether ``image_id`` is among the best-scoring hits (a tiny model trained for two
    steps embeds some pictures alike, so the best score can be shared)."""
    scores = {hit.item["id"] if hasattr(hit, "item") else hit["id"]:
              hit.score if hasattr(hit, "score") else hit["score"] for hit in hits}  # fmt: skip
    return image_id in scores and scores[image_id] >= max(scores.values()) - 1e-5


# --- the index ------------------------------------------------------------------------------


def test_an_index_searches_by_text_and_by_picture_and_keeps_versions(
    pictures: Path, clip_model: Path, tmp_path: Path
) -> None:
    index = ImageIndex.create("shades", model_ref=str(clip_model), replace=True,
                              sources=[pictures / "captions.jsonl"])  # fmt: skip
    assert len(index.items) == 9 and index.items[0]["caption"] == "a black square"
    hits = index.search_text("a grey square", k=4)
    assert [hit.rank for hit in hits] == [1, 2, 3, 4]
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)
    picture = Image.open(pictures / "white-1.png").convert("RGB")
    same = index.search_image(picture, k=9)
    assert _nearest(same, "white-1.png")
    # the query picture embeds to the very vector the index holds for it
    model, processor = clip_for(str(clip_model))
    row = [item["id"] for item in index.items].index("white-1.png")
    assert np.allclose(embed_images(model, processor, [picture])[0], index.vectors[row],
                       atol=1e-5)  # fmt: skip
    thumbnail = same[0].to_dict(thumbnail=True)["thumbnail"]
    assert thumbnail.startswith("data:image/png;base64,")

    extra = tmp_path / "extra"
    extra.mkdir()
    Image.new("RGB", (8, 8), (10, 200, 10)).save(extra / "green.png")
    report = ImageIndex.open("shades").add([extra, pictures / "captions.jsonl"])
    assert (report.added, report.skipped_sources) == (1, [str(pictures / "captions.jsonl")])
    (extra / "broken.png").write_text("not a picture")
    (tmp_path / "more").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "more" / "fine.png")
    (tmp_path / "more" / "bad.png").write_text("nope")
    version = ImageIndex.open("shades").version
    with pytest.raises(LmforgeError, match=r"bad\.png: not an image"):
        ImageIndex.open("shades").add([tmp_path / "more"])
    reopened = ImageIndex.open("shades")
    assert (reopened.version, len(reopened.items)) == (version, 10)  # nothing half-written

    assert reopened.remove(str(extra)) == (str(extra.resolve()), 1)
    assert reopened.remove("grey-2.png") == ("grey-2.png", 1)
    assert len(ImageIndex.open("shades").items) == 8
    assert {"name": "shades", "images": 8}.items() <= next(
        row for row in list_image_indexes() if row["name"] == "shades").items()  # fmt: skip
    with pytest.raises(LmforgeError, match="already exists"):
        ImageIndex.create("shades", model_ref=str(clip_model))
    with pytest.raises(LmforgeError, match="no image index 'nothing'"):
        ImageIndex.open("nothing")


def test_the_cli_builds_lists_and_searches(pictures: Path, clip_model: Path) -> None:
    built = runner.invoke(app, ["images", "index", "build", "cli-shades", str(pictures),
                                "--model", str(clip_model), "--json"])  # fmt: skip
    assert built.exit_code == 0, built.output
    assert json.loads(built.stdout)["images"] == 9
    found = runner.invoke(app, ["images", "search", "cli-shades", "a white square", "-k", "3",
                                "--json"])  # fmt: skip
    assert found.exit_code == 0, found.output
    assert [hit["rank"] for hit in json.loads(found.stdout)] == [1, 2, 3]
    black = str(pictures / "black-0.png")
    by_picture = runner.invoke(app, ["images", "search", "cli-shades", "--image", black,
                                     "-k", "9", "--json"])  # fmt: skip
    assert _nearest(json.loads(by_picture.stdout), "black-0.png")
    listed = runner.invoke(app, ["images", "index", "list", "--json"])
    assert "cli-shades" in [row["name"] for row in json.loads(listed.stdout)]
    neither = runner.invoke(app, ["images", "search", "cli-shades"])
    assert neither.exit_code == 2 and "not both or neither" in neither.output


# --- served ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(pictures: Path, clip_model: Path) -> Iterator[str]:
    ImageIndex.create("served-shades", model_ref=str(clip_model), replace=True,
                      sources=[pictures])  # fmt: skip
    with lmforge_server(str(clip_model), "--served-name", "shades-clip",
                        "--images", "served-shades") as base:  # fmt: skip
        yield base


def test_images_search_by_text_and_by_picture_with_thumbnails(server: str, pictures: Path) -> None:
    status, text = request(server + "/v1/images/search", {"query": "a grey square", "k": 3})
    assert status == 200, text
    body = json.loads(text)
    assert body["index"] == "served-shades" and len(body["data"]) == 3
    assert all(hit["thumbnail"].startswith("data:image/png;base64,") for hit in body["data"])
    status, text = request(server + "/v1/images/search", {
        "index": "served-shades", "image": _base64(pictures / "grey-1.png"), "k": 9,
        "thumbnails": False})  # fmt: skip
    hits = json.loads(text)["data"]
    assert _nearest(hits, "grey-1.png") and all("thumbnail" not in hit for hit in hits)
    models = json.loads(request(server + "/v1/models")[1])["data"]
    assert {"id": "served-shades", "images": 9}.items() <= models[0].items()


@pytest.mark.parametrize(
    ("body", "param", "says"),
    [
        ({"image": "not base64!"}, "image", "not base64"),
        ({"image": base64.b64encode(b"plain text").decode()}, "image", "not an image"),
        ({"index": "nope", "query": "x"}, "index", "no image index 'nope'"),
        ({"query": "x", "image": "eA=="}, "query", "not both"),
    ],
)
def test_bad_image_search_input_is_a_400_in_the_openai_shape(
    server: str, body: dict, param: str, says: str
) -> None:
    status, text = request(server + "/v1/images/search", body)
    error = json.loads(text)["error"]
    assert status == 400 and error["param"] == param and says in error["message"]
    assert set(error) == {"message", "type", "param", "code"}


def test_classify_takes_images_for_a_served_index(server: str, pictures: Path) -> None:
    white = "data:image/png;base64," + _base64(pictures / "white-2.png")
    body = {"model": "served-shades", "labels": ["black", "grey", "white"],
            "templates": ["a {label} square"],
            "input": [{"image": _base64(pictures / "black-0.png")}, {"image": white}]}  # fmt: skip
    status, text = request(server + "/v1/classify", body)
    assert status == 200, text
    rows = json.loads(text)["data"]
    assert [row["index"] for row in rows] == [0, 1]
    for row in rows:
        probabilities = list(row["probabilities"].values())
        assert sorted(row["probabilities"]) == ["black", "grey", "white"]
        assert probabilities == sorted(probabilities, reverse=True)
        assert sum(probabilities) == pytest.approx(1.0, abs=1e-4)
    status, text = request(server + "/v1/classify", {**body, "input": "a text"})
    assert status == 400 and "input must be images" in text
    status, text = request(server + "/v1/classify", {**body, "labels": ["black"]})
    assert status == 400 and json.loads(text)["error"]["param"] == "labels"


def test_the_web_page_searches_images_and_shows_thumbnails(server: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page()
            page.goto(server + "/")
            page.wait_for_function("document.querySelectorAll('#image-index option').length > 0")
            assert page.locator("#images").is_visible()
            page.fill("#image-query", "a white square")
            page.click("#image-search")
            page.wait_for_function("document.querySelectorAll('#image-results img').length > 0")
            sources = page.eval_on_selector_all("#image-results img", "els => els.map(e => e.src)")
            assert len(sources) == 8  # the page asks for 8 of the 9
            assert all(src.startswith("data:image/png;base64,") for src in sources)
            # the thumbnails decode: every image has a natural width
            widths = page.eval_on_selector_all(
                "#image-results img", "els => els.map(e => e.naturalWidth)")  # fmt: skip
            assert all(width > 0 for width in widths)
        finally:
            browser.close()
