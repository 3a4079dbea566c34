"""``lmforge compress``: quantization that saves and reloads, vocabulary pruning,
distillation through the training engine, chains, refusals and the measured table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from lmforge.cli.main import app
from lmforge.compress.config import CompressConfig
from lmforge.compress.run import compress_model, parse_methods
from lmforge.data.bundled import dataset_path
from lmforge.errors import LmforgeError
from lmforge.hub import load_model, resolve

SENTIMENT = dataset_path("sentiment", "train")
SENTIMENT_TEST = dataset_path("sentiment", "test")
DIALOGS = dataset_path("customer_service", "train")


def fp32_size(path: Path) -> int:
    return (path / "model.safetensors").stat().st_size


def run(ref: Path, methods: str, out: Path, **options: object) -> Path:
    options.setdefault("measure", False)
    config = CompressConfig(model=str(ref), methods=parse_methods(methods), **options)
    compress_model(config, out, track=False)
    return out


def ids(text: str, tokenizer: object) -> torch.Tensor:
    return torch.tensor([tokenizer(text)["input_ids"]])  # type: ignore[operator]


# --- quantization -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scheme", "max_size", "max_error"),
    # max |logit - fp32 logit| of the tiny model (logits up to ~1.2): measured 0.023
    # (int8-dynamic, activations rounded too), 0.010 (int8), 0.13 (int4)
    [("int8-dynamic", 0.30, 0.06), ("int8", 0.30, 0.03), ("int4", 0.20, 0.3)],
)
def test_a_quantized_causal_lm_saves_reloads_and_stays_close(
    home: Path, tiny_causal_lm: Path, tmp_path: Path, scheme: str, max_size: float,
    max_error: float,
) -> None:  # fmt: skip
    out = run(tiny_causal_lm, scheme, tmp_path / scheme)
    meta = json.loads((out / "lmforge_compress.json").read_text())
    assert meta["scheme"] == scheme and meta["methods"] == [scheme]
    assert meta["source"] == str(tiny_causal_lm)
    assert fp32_size(out) < max_size * fp32_size(tiny_causal_lm)

    source, tokenizer = load_model(resolve(str(tiny_causal_lm)))
    quantized, _ = load_model(resolve(str(out)))
    text = ids("Where is my order? It was due on Monday.", tokenizer)
    with torch.no_grad():
        expected, got = source(input_ids=text).logits, quantized(input_ids=text).logits
    assert 0 < float((got - expected).abs().max()) < max_error


def test_the_saved_file_holds_integers_and_a_tied_head_once(
    home: Path, tiny_causal_lm: Path, tmp_path: Path
) -> None:
    from safetensors import safe_open

    out = run(tiny_causal_lm, "int8", tmp_path / "int8")
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
        assert f.get_tensor("model.embed_tokens.qweight").dtype == torch.int8
    assert not any(key.startswith("lm_head") for key in keys)  # tied: the embedding's ints
    assert "model.layers.0.self_attn.qkv_proj.qweight" in keys  # fused, then quantized
    assert "model.norm.weight" in keys


def test_lmforge_generate_runs_a_quantized_model(
    home: Path, tiny_causal_lm: Path, tmp_path: Path
) -> None:
    out = run(tiny_causal_lm, "int8-dynamic", tmp_path / "int8")
    result = CliRunner().invoke(app, ["generate", str(out), "Hello", "--max-tokens", "5"])
    assert result.exit_code == 0, result.stdout + result.stderr


def test_lmforge_serve_serves_a_quantized_model_and_refuses_to_quantize_it_again(
    home: Path, tiny_causal_lm: Path, tmp_path: Path
) -> None:
    import openai

    from tests.servers import lmforge_server

    out = run(tiny_causal_lm, "int8-dynamic", tmp_path / "int8")
    refused = CliRunner().invoke(app, ["serve", str(out), "--quantize", "int8", "--port", "1"])
    assert refused.exit_code == 2 and "already quantized (int8-dynamic" in refused.stderr
    with lmforge_server(str(out), "--served-name", "small", "--max-model-len", "64") as base:
        client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0)
        answer = client.chat.completions.create(
            model="small", messages=[{"role": "user", "content": "Hi"}], max_tokens=4
        )
    assert answer.usage.completion_tokens == 4


def test_an_encoder_quantizes_and_embeds_through_sentence_embedder(
    home: Path, tiny_encoder: Path, tmp_path: Path
) -> None:
    from lmforge.retrieve import SentenceEmbedder

    out = run(tiny_encoder, "int8-dynamic", tmp_path / "int8")
    texts = ["The hub pairs in a minute.", "Refunds take five days.", "Thanks!"]
    expected = SentenceEmbedder(str(tiny_encoder)).encode(texts)
    got = SentenceEmbedder(str(out)).encode(texts)
    cosine = (got * expected).sum(1) / (
        (got**2).sum(1) ** 0.5 * (expected**2).sum(1) ** 0.5
    )  # measured >= 0.9999 on the tiny encoder
    assert cosine.min() > 0.999


def test_a_quantized_model_is_not_quantized_again_nor_exported_to_gguf(
    home: Path, tiny_causal_lm: Path, tmp_path: Path
) -> None:
    from lmforge.compress.export import export_model

    out = run(tiny_causal_lm, "int8", tmp_path / "int8")
    with pytest.raises(LmforgeError, match=r"already quantized \(int8.*fp32 source instead"):
        run(out, "int4", tmp_path / "again")
    with pytest.raises(LmforgeError, match="Export its fp32 source instead"):
        export_model(str(out), "gguf", tmp_path / "x.gguf", track=False)
    assert not (tmp_path / "again").exists() and not (tmp_path / "x.gguf").exists()


# --- chains and bad input ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("methods", "message"),
    [
        ("int8,distill", r"methods\[0\]: one quantization .* and last"),
        ("int8,int4", "one quantization"),
        ("prune-vocab,prune-vocab", r"methods\[1\]: names 'prune-vocab' a second time"),
        ("int9", r"methods\[0\]: unknown method 'int9'; choose from distill, prune-vocab"),
        ("int8,int-4", r"methods\[1\]: unknown method 'int-4'.*did you mean 'int4'"),
        (" , ", "methods: is empty"),
    ],
)
def test_bad_chains_are_refused_naming_the_rule(methods: str, message: str) -> None:
    with pytest.raises(LmforgeError, match=message):
        parse_methods(methods)


def test_methods_that_need_a_corpus_say_so(home: Path, tiny_encoder: Path, tmp_path: Path) -> None:
    for method in ("prune-vocab", "distill"):
        with pytest.raises(LmforgeError, match=rf"methods\[0\]: {method} needs data"):
            run(tiny_encoder, method, tmp_path / method)
    with pytest.raises(LmforgeError, match="no such file"):
        run(tiny_encoder, "prune-vocab", tmp_path / "x", data=tmp_path / "missing.jsonl")


def test_a_failed_compress_leaves_the_previous_output_intact(
    home: Path, tiny_causal_lm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lmforge.compress.quantize as quantize

    out = run(tiny_causal_lm, "int8", tmp_path / "out")
    before = sorted(p.name for p in out.iterdir())

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(quantize, "quantized_state", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        run(tiny_causal_lm, "int4", out)
    assert sorted(p.name for p in out.iterdir()) == before
    assert json.loads((out / "lmforge_compress.json").read_text())["scheme"] == "int8"
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no leftovers


# --- vocabulary pruning ------------------------------------------------------------------


def test_pruning_keeps_outputs_on_in_domain_text(
    home: Path, tiny_classifier: Path, tmp_path: Path
) -> None:
    from lmforge.compress.corpus import corpus_texts

    out = run(tiny_classifier, "prune-vocab", tmp_path / "pruned", data=SENTIMENT)
    source, tokenizer = load_model(resolve(str(tiny_classifier)))
    pruned, pruned_tokenizer = load_model(resolve(str(out)))
    assert len(pruned_tokenizer) < len(tokenizer) / 10  # 30,522 -> about 800
    assert pruned.config.vocab_size == len(pruned_tokenizer)
    for text in corpus_texts(SENTIMENT, tokenizer)[:20]:
        old, new = ids(text, tokenizer), ids(text, pruned_tokenizer)
        assert tokenizer.convert_ids_to_tokens(old[0]) == pruned_tokenizer.convert_ids_to_tokens(
            new[0]
        )
        with torch.no_grad():
            # equal up to float rounding: on an AMD EPYC machine the logits differed in the
            # last bits (the cause was not traced), bitwise equal elsewhere
            torch.testing.assert_close(source(input_ids=old).logits,
                                       pruned(input_ids=new).logits, rtol=0, atol=1e-5)  # fmt: skip


def test_a_pruned_causal_lm_tokenizes_its_corpus_the_same_and_keeps_its_logits(
    home: Path, tiny_causal_lm: Path, tmp_path: Path
) -> None:
    from lmforge.compress.corpus import corpus_texts

    out = run(tiny_causal_lm, "prune-vocab", tmp_path / "pruned", data=DIALOGS)
    source, tokenizer = load_model(resolve(str(tiny_causal_lm)))
    pruned, pruned_tokenizer = load_model(resolve(str(out)))
    kept = tokenizer.convert_tokens_to_ids(
        pruned_tokenizer.convert_ids_to_tokens(list(range(len(pruned_tokenizer))))
    )
    assert len(kept) < len(tokenizer) / 5
    assert pruned_tokenizer.eos_token == tokenizer.eos_token
    assert pruned.config.eos_token_id == pruned_tokenizer.eos_token_id
    text = corpus_texts(DIALOGS, tokenizer)[0]
    old, new = ids(text, tokenizer), ids(text, pruned_tokenizer)
    assert [kept[i] for i in new[0]] == old[0].tolist()
    with torch.no_grad():
        expected = source(input_ids=old).logits[..., kept]
        assert torch.allclose(pruned(input_ids=new).logits, expected, atol=1e-5)
    # words the corpus never used still tokenize, into smaller known pieces
    assert pruned_tokenizer.decode(pruned_tokenizer("zygote xylophone")["input_ids"]) == (
        "zygote xylophone"
    )


# --- distillation ------------------------------------------------------------------------


def test_distill_trains_a_smaller_student_through_the_training_engine(
    home: Path, tiny_classifier: Path, tmp_path: Path
) -> None:
    # 300 of the 1,400+ training reviews: one epoch over all of them took 24 s.
    reviews = tmp_path / "reviews.jsonl"
    reviews.write_text("".join(SENTIMENT.read_text(encoding="utf-8").splitlines(True)[:300]))
    out = run(tiny_classifier, "distill", tmp_path / "student", data=reviews,
              student_layers=1, epochs=1)  # fmt: skip
    student, _ = load_model(resolve(str(out)))
    assert student.config.num_hidden_layers == 1 and len(student.bert.encoder.layer) == 1
    assert student.config.id2label == {0: "negative", 1: "neutral", 2: "positive"}
    trained = json.loads((out / "lmforge_compress.json").read_text())
    assert trained["methods"] == ["distill"]
    config = (out / "lmforge_config.yaml").read_text()
    assert "name: distill" in config and "student_layers: 1" in config


def test_distillation_loss_is_cross_entropy_without_soft_targets_and_zero_kl_on_itself() -> None:
    from lmforge.tasks.distill import distillation_loss

    torch.manual_seed(0)
    logits, targets = torch.randn(5, 3), torch.tensor([0, 1, 2, 1, 0])
    ce = torch.nn.functional.cross_entropy(logits, targets, reduction="sum")
    assert torch.allclose(distillation_loss(logits, torch.randn(5, 3), targets, 2.0, 0.0), ce)
    assert float(distillation_loss(logits, logits, targets, 2.0, 1.0)) == pytest.approx(0, abs=1e-6)


def test_hidden_state_loss_is_zero_on_the_teachers_own_layers_and_teaches_a_cut_student(
    tiny_classifier: Path,
) -> None:
    from lmforge.tasks.distill import DistillTask, hidden_state_loss, keep_layers

    teacher, tokenizer = load_model(resolve(str(tiny_classifier)))
    batch = tokenizer(["Great lock.", "The app crashes every day, useless."], padding=True,
                      return_tensors="pt")  # fmt: skip
    batch["label"] = torch.tensor([2, 0])
    mask = batch["attention_mask"].float()
    weights = mask / mask.sum(1, keepdim=True)
    with torch.no_grad():
        states = teacher(**batch, output_hidden_states=True).hidden_states
    assert float(hidden_state_loss(states, states, [0, 1], weights)) == 0.0

    student, _ = load_model(resolve(str(tiny_classifier)))
    assert keep_layers(student, 1) == [0]
    task = DistillTask()
    task.teacher, task.kept, task.hidden_weight = teacher.eval(), [1], 1.0  # layer 1's place
    inputs = {k: v for k, v in batch.items() if k != "label"}
    with torch.no_grad():
        cut = student(**inputs, output_hidden_states=True).hidden_states
    expected = hidden_state_loss(cut, states, [1], weights)
    assert float(expected) > 0  # layer 0's output is not layer 1's
    task.hidden_weight = 0.0
    soft_and_hard = task.loss(student, batch)
    task.hidden_weight = 1.0
    total = task.loss(student, batch)
    assert float(total - soft_and_hard) == pytest.approx(float(expected), rel=1e-5)
    total.backward()
    assert student.bert.encoder.layer[0].attention.self.query.weight.grad.abs().sum() > 0


def test_hidden_state_loss_on_a_causal_lm_counts_the_positions_that_predict_a_target(
    tiny_causal_lm: Path,
) -> None:
    from lmforge.tasks.base import IGNORE_INDEX
    from lmforge.tasks.distill import DistillTask, hidden_state_loss, keep_layers

    teacher, tokenizer = load_model(resolve(str(tiny_causal_lm)))
    student, _ = load_model(resolve(str(tiny_causal_lm)))
    kept = keep_layers(student, 1)
    input_ids = ids("The Keystone lock has a 45-day return window.", tokenizer)
    labels = input_ids.clone()
    labels[:, :4] = IGNORE_INDEX  # a prompt: no target for its first tokens
    batch = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids),
             "labels": labels}  # fmt: skip
    # position t predicts token t+1: the first target, token 4, is predicted at position 3
    weights = torch.zeros(input_ids.shape)
    weights[:, 3:-1] = 1.0
    with torch.no_grad():
        expected = hidden_state_loss(
            student.model(input_ids, output_hidden_states=True).hidden_states,
            teacher.model(input_ids, output_hidden_states=True).hidden_states,
            kept,
            weights,
        )
    task = DistillTask()
    task.teacher, task.kept = teacher.eval(), kept
    without = task.loss(student, batch)
    task.hidden_weight = 2.0
    with_hidden = task.loss(student, batch)
    assert float(with_hidden - without) == pytest.approx(2 * float(expected), rel=1e-4)
    assert float(expected) > 0


def test_distill_hidden_needs_student_layers_and_the_distill_task() -> None:
    from pydantic import ValidationError

    from lmforge.config import ConfigError, load_config_dict
    from lmforge.config.tasks import DistillSettings

    with pytest.raises(ValidationError, match=r"distill_hidden: .* needs task\.student_layers"):
        DistillSettings(name="distill", distill_hidden=1.0)
    sft = {"model": {"ref": "m"}, "task": {"name": "sft", "distill_hidden": 1.0},
           "data": {"train": "t.jsonl"}}  # fmt: skip
    with pytest.raises(ConfigError, match="distill_hidden: task 'sft' does not take it"):
        load_config_dict(sft)
    settings = DistillSettings(name="distill", distill_hidden=1.0, student_layers=2)
    assert settings.distill_hidden == 1.0


def test_a_causal_lm_distills_on_text_into_fewer_layers(
    home: Path, tiny_causal_lm: Path, tmp_path: Path
) -> None:
    data = tmp_path / "text.jsonl"
    lines = dataset_path("domain_text", "train").read_text().splitlines()[:8]
    data.write_text("\n".join(lines) + "\n")
    out = run(tiny_causal_lm, "distill,int8", tmp_path / "student", data=data,
              student_layers=1, epochs=1)  # fmt: skip
    student, tokenizer = load_model(resolve(str(out)))
    assert student.config.num_hidden_layers == 1
    assert json.loads((out / "lmforge_compress.json").read_text())["methods"] == [
        "distill", "int8",
    ]  # fmt: skip
    with torch.no_grad():
        student(input_ids=ids("Hello", tokenizer))


def test_a_teacher_with_another_tokenizer_is_refused(
    home: Path, tiny_classifier: Path, tiny_causal_lm: Path, tmp_path: Path
) -> None:
    from lmforge.compress.distill import distill_config
    from lmforge.train.loop import train

    options = CompressConfig(model=str(tiny_causal_lm), methods=["distill"], data=SENTIMENT)
    config = distill_config(tiny_causal_lm, options, "classifier", tmp_path / "run")
    config.task.teacher = str(tiny_classifier)
    with pytest.raises(LmforgeError, match="different tokenizers"):
        train(config, track=False)


# --- the table --------------------------------------------------------------------------


def test_compress_cli_prints_and_writes_the_table_and_tracks_the_run(
    home: Path, tiny_classifier: Path, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    from lmforge.track.mlflow_store import tracking_uri

    report = tmp_path / "report.md"
    result = CliRunner().invoke(app, [
        "compress", str(tiny_classifier), "--method", "prune-vocab,int8-dynamic",
        "--data", str(SENTIMENT), "--eval-data", str(SENTIMENT_TEST),
        "--out", str(tmp_path / "small"), "--report", str(report),
    ])  # fmt: skip
    assert result.exit_code == 0, result.stdout + result.stderr
    text = report.read_text()
    assert "| model | parameters | size MB | size vs fp32 |" in text
    assert "prune-vocab+int8-dynamic" in text and "accuracy" in text
    assert (tmp_path / "small" / "REPORT.md").read_text() == text
    client = MlflowClient(tracking_uri())
    experiment = client.get_experiment_by_name("compress")
    runs = client.search_runs([experiment.experiment_id])
    assert runs[0].data.tags["lmforge.source_path"] == str(tiny_classifier)
    assert runs[0].data.metrics["compressed/size_bytes"] < runs[0].data.metrics["source/size_bytes"]


def test_dynamic_int8_rows_do_not_depend_on_the_batch_they_are_in() -> None:
    """Each row's activations get their own INT8 scale: a row gives the same bits alone or
    beside a much larger row, and the large row no longer coarsens the others' steps
    (fbgemm's own op, one scale per input, fails both)."""
    from lmforge.hub import quantized

    torch.manual_seed(0)
    weight, bias = torch.randn(32, 64), torch.randn(32)
    q, scale = quantized.int8_rows(weight)
    layer = quantized.dynamic_int8_linear(q, scale, bias)
    x = torch.randn(2, 5, 64)
    x[1, 0] *= 50  # a prompt's first token: far larger than the rest
    batched = layer(x)
    alone = torch.stack([torch.cat([layer(x[b, t : t + 1]) for t in range(5)]) for b in range(2)])
    assert torch.equal(batched, alone)
    assert torch.equal(layer.bias(), bias)
    exact = x @ (q.float() * scale[:, None]).T + bias
    small = (slice(None), slice(1, None))  # every row but the large one
    packed = layer._packed_params._packed_params
    one_scale = torch.ops.quantized.linear_dynamic(x, packed, layer.reduce_range) + bias
    assert not torch.equal(one_scale[0], torch.ops.quantized.linear_dynamic(
        x[0], packed, layer.reduce_range) + bias)  # fmt: skip
    row_error = (batched[small] - exact[small]).abs().mean()
    assert row_error * 5 < (one_scale[small] - exact[small]).abs().mean()


def test_dynamic_int8_gives_7_bits_to_the_operand_without_outliers_where_sums_are_16_bit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from lmforge.hub import quantized

    torch.manual_seed(0)
    weight, x = torch.randn(16, 64), torch.randn(3, 64) * 4
    exact = x @ weight.T
    q, scale = quantized.int8_rows(weight)
    errors = {}
    # Without VNNI the (True, ...) layers sum pairs of 8-bit products in 16 bits and
    # saturate, so their error depends on this CPU.
    vnni_here = quantized.has_int8_dot()
    for vnni, outliers, weight_max, reduce_range in (
        (True, "activations", 127, False),
        (True, "weights", 127, False),
        (False, "activations", 63, False),  # 7-bit weights
        (False, "weights", 127, True),  # 7-bit activations, PyTorch's reduce_range
    ):
        monkeypatch.setattr(quantized, "has_int8_dot", lambda v=vnni: v)
        layer = quantized.dynamic_int8_linear(q, scale, None, outliers)
        assert int(layer.weight().int_repr().abs().max()) == weight_max
        packed = layer._packed_params._packed_params
        assert torch.equal(layer(x), quantized.linear_rows(x, packed, reduce_range, None))
        assert torch.equal(quantized._layer_tensors(layer)["qweight"], q)  # saved: 8-bit rows
        errors[vnni, outliers] = float((layer(x) - exact).abs().mean())
    # all within 2% of the outputs' size, saturation included
    assert max(errors.values()) < 0.02 * float(exact.abs().mean())
    if vnni_here:  # sums in 32 bits: both operands in 8 bits are closer to fp32 than either cut
        assert errors[True, "activations"] < min(errors[False, "activations"],
                                                 errors[False, "weights"])  # fmt: skip
    with pytest.raises(ValueError, match="outliers"):
        quantized.dynamic_int8_linear(q, scale, None, "bias")


def test_a_compress_run_links_to_the_training_run_its_source_came_from(
    home: Path, tiny_encoder: Path, tmp_path: Path
) -> None:
    import shutil

    from mlflow import MlflowClient

    from lmforge.track.mlflow_store import tracking_uri

    run_dir = tmp_path / "runs" / "abc123"
    shutil.copytree(tiny_encoder, run_dir / "model")
    (run_dir / "metrics.json").write_text(json.dumps({"run_id": "abc123"}))
    config = CompressConfig(model=str(run_dir / "model"), methods=["int8"], measure=False)
    result = compress_model(config, tmp_path / "out")
    tags = MlflowClient(tracking_uri()).get_run(result.run_id).data.tags
    assert tags["lmforge.source_run_id"] == "abc123"
    assert tags["lmforge.source_path"] == str(run_dir / "model")
