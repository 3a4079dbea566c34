"""The training engine end to end on tiny models: tasks, methods, outputs, tracking."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from lmforge.config import load_config_dict
from lmforge.errors import LmforgeError
from lmforge.train.loop import TrainResult, train
from tests.datafiles import chat_rows, labeled_rows, text_rows, write_jsonl


def run(
    model: Path, task_name: str, data_file: Path, tmp_path: Path, **sections: Any
) -> TrainResult:
    """Train with a small config; ``sections`` override/extend it."""
    config: dict[str, Any] = {
        "model": {"ref": str(model)},
        "task": {"name": task_name, "max_length": 64},
        "data": {"train": str(data_file)},
        "train": {"max_steps": 4, "batch_size": 4, "lr": 1e-3, "log_every": 1},
        "output": {"dir": str(tmp_path / "run"), "experiment": "tests"},
    }
    for name, values in sections.items():
        config[name] = {**config.get(name, {}), **values}
    return train(load_config_dict(config), track=False)


def test_sft_lora_run_writes_a_standard_adapter(tiny_causal_lm: Path, tmp_path: Path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    data = write_jsonl(tmp_path / "chat.jsonl", chat_rows(12))
    result = run(
        tiny_causal_lm, "sft", data, tmp_path, method={"name": "lora", "lora_r": 4},
        data={"val_ratio": 0.25},
    )  # fmt: skip
    assert result.steps == 4
    assert result.trainable_parameters < result.total_parameters / 10
    model_dir = result.model_dir
    for name in ("adapter_config.json", "adapter_model.safetensors", "chat_template.jinja",
                 "tokenizer.json", "lmforge_config.yaml"):  # fmt: skip
        assert (model_dir / name).is_file(), name
    assert (result.run_dir / "config.yaml").is_file()
    assert json.loads((result.run_dir / "metrics.json").read_text())["steps"] == 4
    assert "perplexity" in result.eval_metrics

    # Plain peft + transformers load it, and it changes the base model's output.
    base = AutoModelForCausalLM.from_pretrained(tiny_causal_lm).eval()
    tuned = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_causal_lm), model_dir
    ).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    assert tokenizer.chat_template == AutoTokenizer.from_pretrained(tiny_causal_lm).chat_template
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        assert not torch.allclose(base(input_ids=ids).logits, tuned(input_ids=ids).logits)


def test_same_config_same_losses(tiny_causal_lm: Path, tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "chat.jsonl", chat_rows(8))
    first = run(tiny_causal_lm, "sft", data, tmp_path / "a")
    second = run(tiny_causal_lm, "sft", data, tmp_path / "b")
    assert first.final_loss == second.final_loss
    assert torch.isfinite(torch.tensor(first.final_loss))


def test_full_fine_tuning_lowers_the_loss(tiny_causal_lm: Path, tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "chat.jsonl", chat_rows(8))
    result = run(
        tiny_causal_lm, "sft", data, tmp_path, train={"max_steps": 12, "lr": 3e-3},
        data={"val_ratio": 0.25}, eval={"before_training": True},
    )  # fmt: skip
    assert result.final_loss < 9.0  # a random 49k-vocab model starts near ln(49152) = 10.8


def test_merge_gives_the_same_logits_as_base_plus_adapter(
    tiny_causal_lm: Path, tmp_path: Path
) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from lmforge.train.merge import merge_adapter

    data = write_jsonl(tmp_path / "chat.jsonl", chat_rows(8))
    result = run(tiny_causal_lm, "sft", data, tmp_path, method={"name": "lora", "lora_r": 4})
    merged_dir = merge_adapter(result.model_dir, tmp_path / "merged")
    merged = AutoModelForCausalLM.from_pretrained(merged_dir).eval()
    adapted = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_causal_lm), result.model_dir
    ).eval()
    ids = torch.tensor([[5, 17, 300, 2048, 7]])
    with torch.no_grad():
        difference = (merged(input_ids=ids).logits - adapted(input_ids=ids).logits).abs().max()
    assert difference < 1e-4


def test_classify_reports_accuracy_f1_and_confusion(tiny_encoder: Path, tmp_path: Path) -> None:
    train_file = write_jsonl(tmp_path / "train.jsonl", labeled_rows(24))
    valid_file = write_jsonl(tmp_path / "valid.jsonl", labeled_rows(9))
    result = run(
        tiny_encoder, "classify", train_file, tmp_path, data={"validation": str(valid_file)}
    )
    metrics = result.eval_metrics
    assert 0.0 <= metrics["accuracy"] <= 1.0
    assert 0.0 <= metrics["macro_f1"] <= 1.0
    assert sum(map(sum, metrics["confusion_matrix"])) == 9
    config = json.loads((result.model_dir / "config.json").read_text())
    assert sorted(config["id2label"].values()) == ["negative", "neutral", "positive"]


def test_classify_with_lora_saves_its_head_and_merges(tiny_encoder: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForSequenceClassification

    from lmforge.train.merge import load_adapter_model, merge_adapter

    data = write_jsonl(tmp_path / "train.jsonl", labeled_rows(24))
    result = run(tiny_encoder, "classify", data, tmp_path, method={"name": "lora"})
    merged = AutoModelForSequenceClassification.from_pretrained(
        merge_adapter(result.model_dir, tmp_path / "merged")
    ).eval()
    from lmforge.hub import resolve

    adapted = load_adapter_model(resolve(str(result.model_dir)))
    ids = torch.tensor([[101, 2023, 2003, 2307, 102]])
    with torch.no_grad():
        assert torch.allclose(
            merged(input_ids=ids).logits, adapted(input_ids=ids).logits, atol=1e-5
        )
    assert merged.config.num_labels == 3
    # The adapter directory itself serves as a classifier (the head merged in on load).
    from lmforge.hub.classifier import TextClassifier

    served = TextClassifier(str(result.model_dir))
    assert sorted(served.labels) == ["negative", "neutral", "positive"]
    with torch.no_grad():
        assert torch.allclose(served.model(input_ids=ids).logits, merged(input_ids=ids).logits,
                              atol=1e-5)  # fmt: skip


def test_classify_with_lora_on_a_causal_lm_loads_as_a_classifier(
    tiny_causal_lm: Path, tmp_path: Path
) -> None:
    """A decoder with a classification head trains as a peft SEQ_CLS adapter; resolved, it
    is a classifier (not its base's kind), and it classifies."""
    from lmforge.hub import resolve
    from lmforge.hub.classifier import TextClassifier

    data = write_jsonl(tmp_path / "train.jsonl", labeled_rows(24))
    result = run(tiny_causal_lm, "classify", data, tmp_path, method={"name": "lora"})
    assert resolve(str(result.model_dir)).model_kind == "classifier"
    scored = TextClassifier(str(result.model_dir)).classify(["great product", "it broke"])
    assert [set(row) for row in scored] == [{"negative", "neutral", "positive"}] * 2
    assert all(abs(sum(row.values()) - 1) < 1e-4 for row in scored)


def test_regress_reports_rmse_mae_r2(tiny_encoder: Path, tmp_path: Path) -> None:
    rows = [{"text": f"battery {i} mah", "label": float(i)} for i in range(20)]
    result = run(
        tiny_encoder, "regress", write_jsonl(tmp_path / "r.jsonl", rows), tmp_path,
        data={"val_ratio": 0.25},
    )  # fmt: skip
    assert set(result.eval_metrics) >= {"rmse", "mae", "r2"}
    assert result.eval_metrics["rmse"] >= result.eval_metrics["mae"] >= 0


def test_mlm_and_clm_train_and_evaluate(
    tiny_encoder: Path, tiny_causal_lm: Path, tmp_path: Path
) -> None:
    data = write_jsonl(tmp_path / "text.jsonl", text_rows(16))
    mlm = run(tiny_encoder, "mlm", data, tmp_path / "mlm", data={"val_ratio": 0.25})
    assert 0.0 <= mlm.eval_metrics["masked_accuracy"] <= 1.0
    clm = run(tiny_causal_lm, "clm", data, tmp_path / "clm", data={"val_ratio": 0.25})
    assert clm.eval_metrics["perplexity"] > 1.0


def test_freeze_trains_only_the_top_layers(tiny_causal_lm: Path, tmp_path: Path) -> None:
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM

    data = write_jsonl(tmp_path / "chat.jsonl", chat_rows(8))
    result = run(
        tiny_causal_lm, "sft", data, tmp_path, method={"name": "freeze", "trainable_layers": 1}
    )
    before = AutoModelForCausalLM.from_pretrained(tiny_causal_lm).state_dict()
    with safe_open(str(result.model_dir / "model.safetensors"), "pt") as after:
        changed = {k for k in after.keys() if not torch.equal(after.get_tensor(k), before[k])}  # noqa: SIM118
    assert changed, "nothing trained"
    assert all(k.startswith(("model.layers.1.", "model.norm.")) for k in changed), changed


def test_freeze_zero_layers_is_a_linear_probe_and_sgd_steps_it(
    tiny_encoder: Path, tmp_path: Path
) -> None:
    """method.trainable_layers 0 trains only what follows the last layer (pooler and head);
    train.optimizer sgd steps it with momentum (its buffers are in the checkpoint)."""
    from safetensors import safe_open
    from transformers import AutoModel

    data = write_jsonl(tmp_path / "train.jsonl", labeled_rows(16))
    result = run(tiny_encoder, "classify", data, tmp_path,
                 method={"name": "freeze", "trainable_layers": 0},
                 train={"optimizer": "sgd", "lr": 0.5, "save_every": 4})  # fmt: skip
    before = AutoModel.from_pretrained(tiny_encoder).state_dict()
    with safe_open(str(result.model_dir / "model.safetensors"), "pt") as after:
        weights = {k: after.get_tensor(k) for k in after.keys()}  # noqa: SIM118
    head = {k for k in weights if k.startswith(("bert.pooler.", "classifier."))}
    assert head == {"bert.pooler.dense.weight", "bert.pooler.dense.bias",
                    "classifier.weight", "classifier.bias"}  # fmt: skip
    assert result.trainable_parameters == sum(weights[k].numel() for k in head)
    assert not torch.equal(weights["bert.pooler.dense.weight"], before["pooler.dense.weight"])
    encoder = [k for k in weights if k not in head]
    assert encoder
    assert all(torch.equal(weights[k], before[k.removeprefix("bert.")]) for k in encoder)
    checkpoint = result.run_dir / "checkpoints" / "step-000004" / "optimizer.pt"
    state = torch.load(checkpoint, weights_only=False)  # our own file: it pickles the RNG state
    buffers = state["optimizer"]["state"].values()
    assert len(buffers) == 4 and all("momentum_buffer" in s for s in buffers)


def test_lora_layers_adapts_only_the_top_layers(tiny_causal_lm: Path, tmp_path: Path) -> None:
    """method.lora_layers: the adapter holds the top layers' matrices only (the backward
    pass then stops below them); more layers than the model has is an error naming it."""
    from safetensors.torch import load_file

    data = write_jsonl(tmp_path / "chat.jsonl", chat_rows(8))
    result = run(tiny_causal_lm, "sft", data, tmp_path,
                 method={"name": "lora", "lora_r": 4, "lora_layers": 1})  # fmt: skip
    keys = load_file(result.model_dir / "adapter_model.safetensors").keys()
    assert keys and all(".layers.1." in key for key in keys), sorted(keys)  # 2 layers: top one
    with pytest.raises(LmforgeError, match=r"method\.lora_layers: 3, but the model has 2"):
        run(tiny_causal_lm, "sft", data, tmp_path / "b",
            method={"name": "lora", "lora_layers": 3})  # fmt: skip


def test_qlora_is_refused_on_cpu(tiny_causal_lm: Path, tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "chat.jsonl", chat_rows(4))
    with pytest.raises(LmforgeError, match="qlora needs a CUDA GPU"):
        run(tiny_causal_lm, "sft", data, tmp_path, method={"name": "qlora"})


def test_wrong_backbone_for_the_task_is_refused(tiny_encoder: Path, tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "chat.jsonl", chat_rows(4))
    with pytest.raises(LmforgeError, match="needs one of causal-lm"):
        run(tiny_encoder, "sft", data, tmp_path)


def test_bad_rows_stop_the_run_before_training_or_are_skipped_and_counted(
    tiny_causal_lm: Path, tmp_path: Path
) -> None:
    rows = [*chat_rows(6), {"messages": []}, {"text": "no messages here"}]
    data = write_jsonl(tmp_path / "chat.jsonl", rows)
    with pytest.raises(LmforgeError) as err:
        run(tiny_causal_lm, "sft", data, tmp_path / "fail")
    assert "line 7" in str(err.value) and "line 8" in str(err.value)
    assert not (tmp_path / "fail" / "run").exists()  # nothing written before the data is good
    result = run(tiny_causal_lm, "sft", data, tmp_path / "skip", data={"on_error": "skip"})
    assert result.data_metrics["data/train/rows_skipped"] == 2.0


def test_overlong_examples_are_truncated_or_dropped_and_counted(
    tiny_causal_lm: Path, tmp_path: Path
) -> None:
    long_chat = {
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "word " * 200},
        ]
    }
    data = write_jsonl(tmp_path / "chat.jsonl", [*chat_rows(6), long_chat])
    truncated = run(tiny_causal_lm, "sft", data, tmp_path / "t", task={"max_length": 128})
    assert truncated.data_metrics["data/train/truncated"] == 1.0
    dropped = run(
        tiny_causal_lm, "sft", data, tmp_path / "d", data={"overlong": "drop"},
        task={"max_length": 128},
    )  # fmt: skip
    assert dropped.data_metrics["data/train/dropped_overlong"] == 1.0
    assert dropped.data_metrics["data/train/examples"] == 6.0
