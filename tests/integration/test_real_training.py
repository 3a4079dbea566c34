"""The training engine on the real zoo models and bundled data, with small step counts."""

from __future__ import annotations

from pathlib import Path

import pytest

from lmforge.config import load_config
from lmforge.train.loop import train

pytestmark = pytest.mark.integration
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "train"


def test_sft_lora_on_smollm2_with_the_bundled_dialogs(tmp_path: Path) -> None:
    from lmforge.hub import load_causal_lm, resolve

    config = load_config(
        EXAMPLES / "sft_customer_service.yaml",
        [
            "train.max_steps=2",
            "train.batch_size=2",
            "task.max_length=256",
            "eval.every=null",
            "eval.max_samples=4",
            "output.register_as=null",
            f"output.dir={tmp_path / 'run'}",
        ],
    )
    result = train(config, track=False)
    assert result.steps == 2
    assert result.eval_metrics["loss"] < 5.0  # SmolLM2 already writes English (ln V = 10.8)
    model, _ = load_causal_lm(resolve(str(result.model_dir)))
    assert model.peft_config["default"].r == 16


def test_mlm_domain_adaptation_of_minilm(tmp_path: Path) -> None:
    config = load_config(
        EXAMPLES / "mlm_domain.yaml",
        ["train.max_steps=3", "train.batch_size=8", f"output.dir={tmp_path / 'run'}"],
    )
    result = train(config, track=False)
    assert result.steps == 3
    assert 0.0 < result.eval_metrics["masked_accuracy"] <= 1.0
