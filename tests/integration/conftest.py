"""Real models shared across the integration tier, trained once per test run."""

from __future__ import annotations

from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "train"


@pytest.fixture(scope="session")
def sentiment_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The MiniLM sentiment classifier of ``examples/train/classify_sentiment.yaml``,
    trained with the example's settings (about 80 s on 2 cores; 100% validation accuracy)."""
    from lmforge.config import load_config
    from lmforge.train.loop import train

    out = tmp_path_factory.mktemp("sentiment") / "run"
    config = load_config(
        EXAMPLES / "classify_sentiment.yaml",
        [f"output.dir={out}", "output.register_as=null", "eval.every=null"],
    )
    return Path(train(config, track=False).model_dir)
