"""``lmforge compress`` scores a classifier's accuracy as ``lmforge eval`` does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lmforge.compress.config import CompressConfig
from lmforge.compress.run import compress_model
from lmforge.data.bundled import dataset_path
from lmforge.hub.classifier import TextClassifier

SENTIMENT_TEST = dataset_path("sentiment", "test")


def test_the_compress_table_scores_accuracy_through_the_classifier_eval_uses(
    home: Path, tiny_classifier: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A dynamic INT8 model's labels depend on which texts share a batch, so the table
    # must not score accuracy on its own speed batches (the figure lmforge eval gave for
    # the same model differed). An oracle in place of TextClassifier's predictions shows
    # which path the table's accuracy came from: the tiny model alone is near chance.
    records = [json.loads(line) for line in SENTIMENT_TEST.read_text().splitlines() if line]
    truth = {record["text"]: record["label"] for record in records}

    def oracle(self: TextClassifier, texts: Any, batch_size: int = 64) -> np.ndarray:
        rows = np.zeros((len(texts), len(self.labels)), dtype=np.float32)  # (N, L)
        for index, text in enumerate(texts):
            rows[index, self.labels.index(truth[text])] = 1.0
        return rows

    monkeypatch.setattr(TextClassifier, "predict_proba", oracle)
    config = CompressConfig(model=str(tiny_classifier), methods=["int8-dynamic"],
                            eval_data=SENTIMENT_TEST)  # fmt: skip
    result = compress_model(config, tmp_path / "small", track=False)
    assert [row["accuracy"] for row in result.rows] == ["100.0%", "100.0%"]
    assert result.rows[1]["change"] == "+0.0 pt"
