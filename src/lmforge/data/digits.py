"""The bundled digits: 1,797 real handwritten digits with captions measured from their pixels.

The images are the UCI "Optical Recognition of Handwritten Digits" test set that
scikit-learn ships inside its wheel (``sklearn.datasets.load_digits``: 8x8 pictures, 17
grey levels, 43 writers). Nothing is downloaded: ``digits_dir()`` writes them once under
``$LMFORGE_HOME/datasets/digits/`` as PNG files with train/validation/test JSON Lines
beside them, identical on every machine (see ``assets/datasets/digits/README.md``).

Each caption names the digit and two properties measured from its pixels, each put in one
of three bands by the terciles of that digit's own images (so "thick" means thick for a
seven): stroke thickness (the ink, the sum of the grey levels) and slant (how far the
strokes lean: the ink-weighted regression of column on row). "a thick, right-leaning
seven"; the middle thickness band is left unsaid ("an upright seven").
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from lmforge.home import atomic_dir, lmforge_home

VERSION = 1  # bump when the images, captions or splits change: digits_dir() rewrites them
SEED = 1797
README = Path(__file__).parent.parent / "assets" / "datasets" / "digits" / "README.md"
SPLITS = {"train": 0.7, "validation": 0.15, "test": 0.15}  # by image
WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
THICKNESS = ("thin", "", "thick")  # terciles of ink, per digit; the middle is unsaid
SLANT = ("left-leaning", "upright", "right-leaning")  # terciles of slant, per digit


def caption(word: str, thickness: str, slant: str) -> str:
    """``"a thick, right-leaning seven"``, ``"an upright one"``."""
    words = f"{thickness}, {slant}" if thickness else slant
    article = "an" if words[0] in "aeiou" else "a"
    return f"{article} {words} {word}"


def prompt_templates() -> list[str]:
    """Zero-shot prompts for the digit words: each caption shape with ``{label}`` in it."""
    return [caption("{label}", thickness, slant) for thickness in THICKNESS for slant in SLANT]


def measure(image: np.ndarray) -> tuple[float, float]:
    """(ink, slant) of one 8x8 grey image: the sum of its grey levels, and the slope of the
    ink-weighted regression of column on row, positive when the top leans right."""
    rows, columns = np.mgrid[0 : image.shape[0], 0 : image.shape[1]]
    weight = image.astype(np.float64)
    ink = float(weight.sum())
    row_mean = (weight * rows).sum() / ink
    column_mean = (weight * columns).sum() / ink
    covariance = (weight * (rows - row_mean) * (columns - column_mean)).sum() / ink
    row_variance = (weight * (rows - row_mean) ** 2).sum() / ink
    return ink, float(-covariance / row_variance)  # rows grow downwards


def digits_records() -> list[dict[str, Any]]:
    """One record per image, in scikit-learn's order: index, digit, label word, ink,
    slant and caption (without the image file)."""
    from sklearn.datasets import load_digits  # imported here: only this dataset needs it

    bunch = load_digits()
    measured = [measure(image) for image in bunch.images]
    records = []
    for index, (digit, (ink, slant)) in enumerate(zip(bunch.target, measured, strict=True)):
        records.append({"index": index, "digit": int(digit), "label": WORDS[digit],
                        "ink": round(ink, 3), "slant": round(slant, 4)})  # fmt: skip
    for digit in range(10):
        mine = [r for r in records if r["digit"] == digit]
        for key, names in (("ink", THICKNESS), ("slant", SLANT)):
            low, high = np.quantile([r[key] for r in mine], [1 / 3, 2 / 3])
            for record in mine:
                band = 0 if record[key] < low else 1 if record[key] < high else 2
                record[f"{key}_band"] = names[band]
    for record in records:
        record["text"] = caption(
            str(record["label"]), str(record["ink_band"]), str(record["slant_band"])
        )
    return records


def digits_dir() -> Path:
    """The folder holding the digits' images and splits, written on first use.

    Returns:
        ``$LMFORGE_HOME/datasets/digits`` with ``images/``, ``train.jsonl``,
        ``validation.jsonl``, ``test.jsonl`` and ``README.md``.
    """
    folder = lmforge_home() / "datasets" / "digits"
    stamp = folder / "dataset.json"
    if stamp.is_file() and json.loads(stamp.read_text()).get("version") == VERSION:
        return folder
    if folder.exists():
        shutil.rmtree(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with atomic_dir(folder) as tmp:
        _write(tmp)
    return folder


def _write(folder: Path) -> None:
    from PIL import Image
    from sklearn.datasets import load_digits

    images = load_digits().images  # (1797, 8, 8), grey levels 0..16
    (folder / "images").mkdir()
    records = digits_records()
    for record in records:
        pixels = np.round(images[record["index"]] * (255 / 16)).astype(np.uint8)
        name = f"images/{record['index']:04d}.png"
        Image.fromarray(255 - pixels, mode="L").save(folder / name)  # dark ink on white
        record["image"] = name
    order = list(range(len(records)))
    random.Random(SEED).shuffle(order)
    start = 0
    counts = {}
    for number, (split, share) in enumerate(SPLITS.items()):
        end = len(order) if number == len(SPLITS) - 1 else start + round(share * len(order))
        chosen = sorted(order[start:end])
        lines = [json.dumps({key: records[i][key] for key in
                             ("image", "text", "label", "digit", "ink", "slant")})
                 for i in chosen]  # fmt: skip
        (folder / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
        counts[split] = len(chosen)
        start = end
    shutil.copy(README, folder / "README.md")
    (folder / "dataset.json").write_text(
        json.dumps(
            {"version": VERSION, "source": "sklearn.datasets.load_digits", "splits": counts},
            indent=2,
        )
        + "\n"
    )
