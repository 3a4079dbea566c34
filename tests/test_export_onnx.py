"""ONNX export: onnxruntime computes what PyTorch computes at any batch size and length,
INT8 is smaller and keeps predictions, lmforge runs the directory, and a refused or
failed export leaves nothing behind."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch

from lmforge.compress.onnx import export_onnx
from lmforge.errors import LmforgeError
from lmforge.hub import ZOO, resolve, zoo_tokenizer
from lmforge.hub.embed import SentenceEmbedder, cosine_similarity
from lmforge.hub.zoo import package_source
from lmforge.runtime import onnx as onnx_export
from lmforge.runtime.onnx import OnnxModel, is_onnx_dir

# Three lengths, padded into one batch: batch 3 and up to 14 tokens, where the export
# traced a batch of 2 texts of 7 tokens; so these also prove the axes are dynamic.
PADDED = [
    "My smart plug arrived broken and the app will not find it on the network at all.",
    "Refund?",
    "Where is my thermostat order?",
]
# Six unrelated sentences: the tiny random encoder puts the closest two at cosine 0.952.
DISTINCT = [
    "The thermostat shipped today.",
    "Where is my smart plug?",
    "How do I reset the router?",
    "My invoice shows a double charge.",
    "The weather is nice today.",
    "I love this speaker.",
]
LABELS = {0: "negative", 1: "neutral", 2: "positive"}  # the tiny_classifier fixture's
SENTENCE_FILES = ("1_Pooling", "modules.json", "sentence_bert_config.json")


@pytest.fixture(scope="module")
def sentence_encoder(tiny_encoder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny BERT with MiniLM's sentence-transformers files: mean pooling, normalized."""
    out = tmp_path_factory.mktemp("sources") / "sentence-encoder"
    shutil.copytree(tiny_encoder, out)
    minilm = package_source(ZOO["all-minilm-l6-v2"])
    for name in SENTENCE_FILES:
        copy = shutil.copytree if (minilm / name).is_dir() else shutil.copy
        copy(minilm / name, out / name)
    return out


@pytest.fixture(scope="module")
def exported(
    sentence_encoder: Path, tiny_classifier: Path, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str, str], Path]:
    """``exported(kind, quant)``: the tiny source of that kind exported once per module."""
    sources = {"encoder": sentence_encoder, "classifier": tiny_classifier}
    made: dict[tuple[str, str], Path] = {}

    def export(kind: str, quant: str) -> Path:
        if (kind, quant) not in made:
            out = tmp_path_factory.mktemp("onnx") / f"{kind}-{quant}"
            export_onnx(resolve(str(sources[kind])), out, quant=quant)
            made[kind, quant] = out
        return made[kind, quant]

    return export


def tokenize(texts: list[str]) -> dict[str, np.ndarray]:
    return dict(zoo_tokenizer("all-minilm-l6-v2")(texts, padding=True, return_tensors="np"))


def torch_probabilities(classifier: Path, texts: list[str]) -> np.ndarray:
    logits = torch.from_numpy(torch_output(classifier, "classifier", tokenize(texts)))
    return torch.softmax(logits, dim=-1).numpy()  # (N, labels)


def torch_output(source: Path, kind: str, batch: dict[str, np.ndarray]) -> np.ndarray:
    from transformers import AutoModel, AutoModelForSequenceClassification

    auto = AutoModel if kind == "encoder" else AutoModelForSequenceClassification
    model = auto.from_pretrained(source).eval()
    with torch.inference_mode():
        outputs = model(**{name: torch.from_numpy(array) for name, array in batch.items()})
    return (outputs.last_hidden_state if kind == "encoder" else outputs.logits).numpy()


@pytest.mark.parametrize("kind", ["encoder", "classifier"])
def test_fp32_onnxruntime_computes_what_pytorch_computes(
    kind: str,
    exported: Callable[[str, str], Path],
    sentence_encoder: Path,
    tiny_classifier: Path,
) -> None:
    out = exported(kind, "none")
    source = sentence_encoder if kind == "encoder" else tiny_classifier
    batch = tokenize(PADDED)
    assert batch["input_ids"].shape == (3, 20)
    session = onnxruntime.InferenceSession(str(out / "model.onnx"))
    assert [node.shape for node in session.get_inputs()] == [["batch", "sequence"]] * 3
    output = "last_hidden_state" if kind == "encoder" else "logits"
    (got,) = session.run([output], batch)
    expected = torch_output(source, kind, batch)
    assert got.shape == expected.shape == ((3, 20, 64) if kind == "encoder" else (3, 3))
    # Measured: 7.2e-07 (last_hidden_state), 1.2e-06 (logits).
    assert np.abs(got - expected).max() < 1e-4


def test_the_directory_carries_its_config_tokenizer_and_pooling(
    exported: Callable[[str, str], Path], sentence_encoder: Path
) -> None:
    out = exported("encoder", "int8")
    assert is_onnx_dir(out) and not is_onnx_dir(sentence_encoder)
    meta = json.loads((out / "lmforge_onnx.json").read_text())
    assert meta == {"format": "onnx", "quant": "int8", "kind": "encoder", "opset": 20,
                    "source": str(sentence_encoder)}  # fmt: skip
    assert resolve(str(out)).model_kind == "encoder"
    assert resolve(str(exported("classifier", "none"))).model_kind == "classifier"
    for name in (*SENTENCE_FILES, "tokenizer.json", "config.json"):
        assert (out / name).exists(), name
    assert not list(out.parent.glob(f".{out.name}.*"))  # no temporary directory left


def test_sentence_embedder_runs_an_onnx_directory_like_the_torch_model(
    exported: Callable[[str, str], Path], sentence_encoder: Path
) -> None:
    expected = SentenceEmbedder(str(sentence_encoder)).encode(PADDED, batch_size=2)
    embedder = SentenceEmbedder(str(exported("encoder", "none")))
    assert isinstance(embedder.onnx, OnnxModel)
    assert embedder.dimension == 64
    vectors = embedder.encode(PADDED, batch_size=2)
    assert vectors.shape == (3, 64)
    # modules.json came along: the vectors are normalized, as MiniLM's are.
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.abs(vectors - expected).max() < 1e-4  # measured: 6.0e-08
    assert embedder.encode([]).shape == (0, 64)


def test_int8_is_a_quarter_of_the_size_and_keeps_neighbours_and_labels(
    exported: Callable[[str, str], Path], sentence_encoder: Path, tiny_classifier: Path
) -> None:
    size = {q: (exported("encoder", q) / "model.onnx").stat().st_size for q in ("none", "int8")}
    assert size["int8"] < 0.3 * size["none"]  # measured 2.29 MB / 8.46 MB = 0.27

    expected = SentenceEmbedder(str(sentence_encoder)).encode(DISTINCT)
    vectors = OnnxModel(exported("encoder", "int8")).embed(DISTINCT)
    similarity = cosine_similarity(vectors, expected)  # (6, 6): int8 rows, torch columns
    # Measured 0.99998. Above 0.99 every int8 vector lies far nearer its own torch vector
    # than the closest two different sentences lie to each other (0.952).
    assert np.diag(similarity).min() > 0.99
    assert (similarity.argmax(axis=1) == np.arange(len(DISTINCT))).all()

    texts = [
        f"order {i}: " + "my parcel arrived broken and " * (i % 5) + "refund" for i in range(48)
    ]
    probabilities = torch_probabilities(tiny_classifier, texts)
    results = OnnxModel(exported("classifier", "int8")).classify(texts)
    got = np.array([[result[label] for label in LABELS.values()] for result in results])
    assert set(probabilities.argmax(axis=1)) == {0, 2}  # the random head uses two labels
    # Measured: 48 of 48 labels agree, probabilities within 0.044. Labels near a tie may
    # flip under 8-bit rounding, so a few may disagree on another CPU's kernels.
    assert (got.argmax(axis=1) == probabilities.argmax(axis=1)).mean() >= 0.95
    assert np.abs(got - probabilities).max() < 0.1


def test_onnx_classifier_gives_named_label_probabilities(
    exported: Callable[[str, str], Path], tiny_classifier: Path
) -> None:
    model = OnnxModel(exported("classifier", "none"))
    results = model.classify(PADDED, batch_size=2)
    expected = torch_probabilities(tiny_classifier, PADDED)
    assert [list(result) for result in results] == [list(LABELS.values())] * 3
    got = np.array([list(result.values()) for result in results])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    with pytest.raises(LmforgeError, match="embeddings needs an exported encoder"):
        model.embed(PADDED)


def test_causal_lms_adapters_and_unknown_quants_are_refused(
    tiny_causal_lm: Path, tiny_encoder: Path, tmp_path: Path
) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModel

    out = tmp_path / "out"
    with pytest.raises(LmforgeError, match=r"encoders and sequence classifiers.*format gguf"):
        export_onnx(resolve(str(tiny_causal_lm)), out, quant=None)
    with pytest.raises(LmforgeError, match=r"quant: .* one of none, int8, not 'q4_0'"):
        export_onnx(resolve(str(tiny_encoder)), out, quant="q4_0")
    # An encoder adapter resolves as an encoder: exporting its base alone would drop it.
    adapter = get_peft_model(AutoModel.from_pretrained(tiny_encoder),
                             LoraConfig(r=4, target_modules=["query", "value"]))  # fmt: skip
    adapter.save_pretrained(tmp_path / "adapter")
    with pytest.raises(LmforgeError, match="merge it first"):
        export_onnx(resolve(str(tmp_path / "adapter")), out, quant=None)
    assert not out.exists()


def test_export_merges_a_classifier_lora_adapter_first(
    home: Path, tiny_classifier: Path, tmp_path: Path
) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification

    from lmforge.compress.export import export_model

    base = AutoModelForSequenceClassification.from_pretrained(tiny_classifier)
    lora = LoraConfig(r=4, target_modules=["query", "value"], task_type="SEQ_CLS",
                      init_lora_weights=False)  # fmt: skip
    adapter = get_peft_model(base, lora)
    adapter.save_pretrained(tmp_path / "adapter")
    base.config.save_pretrained(tmp_path / "adapter")  # lmforge train keeps the labels so
    texts = ["The hub keeps dropping off the network.", "Delivery was on time."]
    with torch.no_grad():
        batch = {name: torch.from_numpy(array) for name, array in tokenize(texts).items()}
        expected = torch.softmax(adapter.eval()(**batch).logits, -1).numpy()
    export_model(str(tmp_path / "adapter"), "onnx", tmp_path / "onnx", track=False)
    got = OnnxModel(tmp_path / "onnx").classify(texts)
    probabilities = np.array([[row[label] for label in LABELS.values()] for row in got])
    assert np.abs(probabilities - expected).max() < 1e-4  # the adapter's effect survived
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".merge-")]


@pytest.mark.parametrize("kind", ["encoder", "classifier"])
def test_an_int8_export_gives_a_text_the_same_result_whatever_runs_beside_it(
    exported: Callable[[str, str], Path], kind: str
) -> None:
    """onnxruntime's dynamic INT8 quantizes a whole input over one range, padding included:
    an INT8 export runs one text at a time, so a text's vector or labels are the ones a
    server computes for that text alone."""
    model = OnnxModel(exported(kind, "int8"))
    texts = ["ok", "my order never arrived and " * 6 + "nobody answers", "a refund, please"]
    run = model.embed if kind == "encoder" else model.classify
    together, alone = run(texts, batch_size=8), [run([text])[0] for text in texts]
    if kind == "encoder":
        assert np.array_equal(together, np.stack(alone))
    else:
        assert together == alone
    assert OnnxModel(exported(kind, "none")).texts_per_run is None  # fp32: batched


def test_an_unreadable_export_record_is_an_error_naming_it(
    exported: Callable[[str, str], Path], tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(exported("encoder", "int8"), broken)
    (broken / onnx_export.META_FILE).write_text("{not json", encoding="utf-8")
    with pytest.raises(LmforgeError, match=r"lmforge_onnx\.json.*export the model again"):
        OnnxModel(broken)


def test_a_failed_export_leaves_no_directory_and_the_previous_one_intact(
    exported: Callable[[str, str], Path], tiny_encoder: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    previous = tmp_path / "previous"
    shutil.copytree(exported("encoder", "none"), previous)
    before = {p.name: p.read_bytes() for p in previous.iterdir() if p.is_file()}

    def fail(source: Path, tmp: Path) -> None:  # after model.onnx and the tokenizer
        raise OSError("disk full")

    monkeypatch.setattr(onnx_export, "copy_pooling_files", fail)
    for out in (tmp_path / "new", previous):
        with pytest.raises(OSError, match="disk full"):
            export_onnx(resolve(str(tiny_encoder)), out, quant="int8")
    assert not (tmp_path / "new").exists()
    assert {p.name: p.read_bytes() for p in previous.iterdir() if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["previous"]  # no temporaries


def test_a_model_onnxruntime_refuses_is_not_written(
    tiny_encoder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_export = onnx_export._export_graph

    def future_opset(*args: object) -> object:
        proto = real_export(*args)
        proto.opset_import[0].version = 99  # an opset this onnxruntime does not run
        return proto

    monkeypatch.setattr(onnx_export, "_export_graph", future_opset)
    with pytest.raises(LmforgeError, match=r"opset 99.*pip install --upgrade onnxruntime"):
        export_onnx(resolve(str(tiny_encoder)), tmp_path / "out", quant=None)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.integration
def test_real_minilm_exports_to_fp32_and_int8(tmp_path: Path) -> None:
    texts = [f"Sentence {i}: my {'smart plug ' * (i % 4)}order is late, can you help?"
             for i in range(64)]  # fmt: skip
    torch_embedder = SentenceEmbedder("all-minilm-l6-v2")
    torch_embedder.encode(texts[:2])  # warm up, as below
    started = time.perf_counter()
    expected = torch_embedder.encode(texts)
    torch_seconds = time.perf_counter() - started
    report = {"torch_s": torch_seconds}
    for quant in ("none", "int8"):
        out = tmp_path / quant
        export_onnx(resolve("all-minilm-l6-v2"), out, quant=quant)
        embedder = SentenceEmbedder(str(out))
        embedder.encode(texts[:2])  # onnxruntime plans its kernels on the first run
        started = time.perf_counter()
        vectors = embedder.encode(texts)
        report[f"{quant}_s"] = time.perf_counter() - started
        report[f"{quant}_mb"] = (out / "model.onnx").stat().st_size / 1e6
        cosine = (vectors * expected).sum(axis=1)  # both normalized
        report[f"{quant}_max_abs"] = float(np.abs(vectors - expected).max())
        report[f"{quant}_cos_min"], report[f"{quant}_cos_mean"] = cosine.min(), cosine.mean()
    print(report)  # with -s: sizes, seconds for the 64 texts, differences
    assert report["none_max_abs"] < 1e-4  # measured 1.8e-07
    assert report["int8_mb"] < 0.3 * report["none_mb"]  # measured 23.4 / 90.9 MB
    # Measured cosine to torch: mean 0.992, min 0.988 (per-channel, reduce_range).
    assert report["int8_cos_mean"] > 0.985 and report["int8_cos_min"] > 0.98
