"""Real models shared across the integration tier, trained once per test run."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

import pytest
from filelock import FileLock

from lmforge.train.loop import TrainResult

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "train"


@pytest.fixture(scope="session")
def sentiment_run(tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    """The MiniLM sentiment classifier of ``examples/train/classify_sentiment.yaml``,
    trained with the example's settings but for 2 epochs instead of 5, to keep CI short
    (about 60 s on 2 cores), at lr 1e-4, the rate the tests' thresholds were measured with:
    the training, explanation and serving tests need a classifier that reads sentiment,
    not the example's best one (its figures: benchmarks/RESULTS.md).

    It is trained once per test run: the first pytest-xdist process to ask trains it while
    holding a file lock in the run's shared temporary folder; the others wait and load it."""
    root = tmp_path_factory.getbasetemp()
    if "PYTEST_XDIST_WORKER" in os.environ:
        root = root.parent  # pytest-xdist gives each process its own basetemp/popen-gwN
    out = root / "sentiment" / "run"
    saved = root / "sentiment" / "result.json"
    with FileLock(str(root / "sentiment.lock")):
        if saved.exists():
            fields = json.loads(saved.read_text())
            return TrainResult(**fields | {k: Path(fields[k]) for k in ("run_dir", "model_dir")})
        result = _train_sentiment(out)
        saved.write_text(json.dumps(asdict(result), default=str))
        return result


def _train_sentiment(out: Path) -> TrainResult:
    from lmforge.config import load_config
    from lmforge.train.loop import train

    config = load_config(
        EXAMPLES / "classify_sentiment.yaml",
        [
            f"output.dir={out}",
            "output.register_as=null",
            "eval.every=null",
            "train.epochs=2",
            "train.lr=1e-4",
        ],
    )
    return train(config, track=False)


@pytest.fixture(scope="session")
def sentiment_model_dir(sentiment_run: TrainResult) -> Path:
    return Path(sentiment_run.model_dir)
