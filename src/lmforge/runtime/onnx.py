"""Models run by onnxruntime: export a loaded encoder or sequence classifier to an ONNX
directory, and run such a directory.

``export_network`` writes a directory that onnxruntime runs on its own: ``model.onnx``
(dynamic batch and sequence axes; fp32, or dynamic INT8 from onnxruntime's quantizer),
the tokenizer, ``config.json`` (so ``lmforge.hub.resolve`` still knows the model's kind
and a classifier's labels), the source's sentence-transformers pooling files and
``lmforge_onnx.json``. ``OnnxModel`` runs such a directory: embeddings pooled like
``SentenceEmbedder``, or label probabilities. ``lmforge export --format onnx``
(``compress/onnx.py``) resolves and checks the source model, then calls
``export_network``; the guard exports its merged encoder with it directly.

This module sits below the stages and ``hub``: it takes loaded networks, never model
references.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import shutil
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoConfig, AutoTokenizer
from transformers.utils import logging as transformers_logging

from lmforge.errors import LmforgeError
from lmforge.hardware import native_threads
from lmforge.home import atomic_dir
from lmforge.runtime.pooling import pool, pooling_config

QUANTS = ("none", "int8")
MODEL_FILE = "model.onnx"
META_FILE = "lmforge_onnx.json"
# torch's default ONNX opset; onnxruntime runs it from 1.17 on.
OPSET = 20
# The sentence-transformers files that say how an encoder's tokens become one vector.
POOLING_FILES = ("1_Pooling", "2_Normalize", "modules.json", "sentence_bert_config.json")
# Classifiers carry no sentence-transformers length; this is the classify task's default.
CLASSIFY_MAX_LENGTH = 512
# the graph's output for each model kind (lmforge.hub.resolve's names)
OUTPUTS = {"encoder": "last_hidden_state", "classifier": "logits"}


def is_onnx_dir(path: Path | str) -> bool:
    """Whether ``path`` is a directory written by ``export_onnx``."""
    return (Path(path) / META_FILE).is_file()


def import_onnxruntime(*, export: bool = False) -> Any:
    """onnxruntime (and onnx and onnxscript, to export), or an error that says how to
    install them."""
    try:
        import onnx  # noqa: F401
        import onnxruntime

        if export:
            import onnxscript  # noqa: F401  (torch's ONNX exporter translates through it)
    except ImportError as error:
        raise LmforgeError(
            f"ONNX export and inference need onnx, onnxruntime and onnxscript ({error}): "
            "pip install onnx onnxruntime onnxscript (lmforge's own dependencies)"
        ) from None
    return onnxruntime


def export_network(
    network: Any,
    tokenizer: Any,
    out: Path,
    *,
    kind: str,
    quant: str,
    source: str,
    pooling_from: Path | None = None,
) -> None:
    """Export ``network`` (fp32, eval mode) to the ONNX directory ``out``.

    Args:
        network: a transformers encoder (``kind`` ``encoder``) or sequence classifier
            (``classifier``).
        tokenizer: its tokenizer, saved beside the graph.
        out: the directory to write; an existing one is replaced only once the export
            has loaded in onnxruntime.
        quant: ``int8`` (onnxruntime dynamic quantization) or ``none`` (fp32).
        source: what the model was, for error messages and ``lmforge_onnx.json``.
        pooling_from: a model folder whose sentence-transformers pooling files to copy.

    Raises:
        LmforgeError: a missing package, or an export onnxruntime cannot run.
    """
    import_onnxruntime(export=True)
    proto = _export_graph(network, tokenizer, OUTPUTS[kind], source)
    with atomic_dir(out) as tmp:
        _write_model(proto, tmp / MODEL_FILE, quant)
        opset = _check_runs(tmp / MODEL_FILE)
        tokenizer.save_pretrained(tmp)
        network.config.save_pretrained(tmp)
        if pooling_from is not None:
            copy_pooling_files(pooling_from, tmp)
        meta = {"format": "onnx", "quant": quant, "kind": kind, "opset": opset,
                "source": source}  # fmt: skip
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


def _export_graph(network: Any, tokenizer: Any, output: str, ref: str) -> Any:
    """Trace ``network`` with torch's dynamo exporter; return the ONNX ModelProto."""
    accepted = inspect.signature(network.forward).parameters
    inputs = [name for name in tokenizer.model_input_names if name in accepted]
    # Two texts of different lengths: a batch of 1 or a length of 1 would be
    # specialized into the graph as a constant.
    example = tokenizer(["an example sentence to trace", "a short one"], padding=True,
                        return_tensors="pt")  # fmt: skip
    axes = {0: torch.export.Dim("batch"), 1: torch.export.Dim("sequence")}
    try:
        with _quiet():
            program = torch.onnx.export(
                _Graph(network, inputs, output),
                tuple(example[name] for name in inputs),
                dynamo=True,
                verbose=False,
                opset_version=OPSET,
                input_names=inputs,
                output_names=[output],
                dynamic_shapes=((axes,) * len(inputs),),
            )
    except Exception as error:  # torch.export and the translator raise many types
        raise LmforgeError(
            f"torch {torch.__version__} could not export '{ref}' to ONNX "
            f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}); "
            "this architecture may not trace with torch.export; use --format hf instead."
        ) from None
    assert program is not None  # dynamo=True always returns the program
    proto = program.model_proto
    # onnxruntime's quantizer runs ONNX shape inference twice, and the second pass
    # rejects the exporter's stored shapes ("Inferred shape and existing shape differ").
    # They are hints only: onnxruntime infers its own.
    del proto.graph.value_info[:]
    return proto


class _Graph(torch.nn.Module):
    """The network as the exporter sees it: positional tensors in, one named output out."""

    def __init__(self, network: Any, inputs: list[str], output: str) -> None:
        super().__init__()
        self.network, self.inputs, self.output = network, inputs, output

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        outputs = self.network(**dict(zip(self.inputs, tensors, strict=True)))
        return getattr(outputs, self.output)


def _write_model(proto: Any, path: Path, quant: str) -> None:
    import onnx

    if quant == "none":
        onnx.save(proto, str(path))
        return
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # Measured on all-MiniLM-L6-v2, cosine of 64 sentence embeddings to torch's (mean /
    # min): per-tensor scales 0.953 / 0.931; per-channel 0.992 / 0.987, at the same size
    # and speed. reduce_range (7-bit weights) keeps x86 CPUs without VNNI from saturating
    # their 16-bit sums; on a VNNI CPU it costs 0.001 (per-channel 0.991 / 0.987), a small
    # price for a file that is right on every CPU it is copied to.
    with _quiet():
        quantize_dynamic(proto, path, weight_type=QuantType.QInt8, per_channel=True,
                         reduce_range=True)  # fmt: skip


def _check_runs(path: Path) -> int:
    """Load ``path`` in onnxruntime; return its ONNX opset.

    Raises:
        LmforgeError: onnxruntime refuses the model, naming the opset and the fix.
    """
    import onnx
    import onnxruntime

    imports = onnx.load(str(path)).opset_import
    opset = next(entry.version for entry in imports if entry.domain in {"", "ai.onnx"})
    try:
        onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime's Fail, InvalidGraph, NotImplemented...
        raise LmforgeError(
            f"onnxruntime {onnxruntime.__version__} cannot run the exported model (ONNX opset "
            f"{opset}): {str(error).strip().splitlines()[0]}; install an onnxruntime that "
            f"runs opset {opset} (pip install --upgrade onnxruntime)."
        ) from None
    return opset


def copy_pooling_files(source: Path, tmp: Path) -> None:
    """Copy the sentence-transformers pooling files of the model folder ``source``."""
    for name in POOLING_FILES:
        item = source / name
        if item.is_dir():
            shutil.copytree(item, tmp / name)
        elif item.is_file():
            shutil.copy2(item, tmp / name)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Hide the exporter's and quantizer's advisory warnings and log lines."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)


class OnnxModel:
    """An ``export_onnx`` directory run through onnxruntime on the CPU, on ``threads``
    threads (``native_threads()`` by default).

    Attributes:
        config: the transformers config saved beside the model (labels, hidden size).
        tokenizer: the source model's tokenizer.
    """

    def __init__(self, path: Path | str, *, threads: int | None = None) -> None:
        self.path = Path(path)
        if not is_onnx_dir(self.path):
            raise LmforgeError(
                f"{self.path} is not an ONNX export (no {META_FILE}); write one with "
                "`lmforge export REF --format onnx --out DIR`."
            )
        onnxruntime = import_onnxruntime()
        transformers_logging.set_verbosity_error()
        self.config = AutoConfig.from_pretrained(self.path)
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        self.pooling, self.normalize, self.max_length = pooling_config(self.path)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or native_threads()
        self.session = onnxruntime.InferenceSession(
            str(self.path / MODEL_FILE), options, providers=["CPUExecutionProvider"]
        )
        self.inputs = [node.name for node in self.session.get_inputs()]
        self.output = self.session.get_outputs()[0].name
        try:
            meta = json.loads((self.path / META_FILE).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise LmforgeError(
                f"cannot read {self.path / META_FILE} ({error}); export the model again with "
                "`lmforge export REF --format onnx --out DIR`."
            ) from None
        # onnxruntime's dynamic INT8 quantizes each input over one range, padding included,
        # so a text's result would depend on the texts beside it (the guard's decision on
        # 5 of 185 challenge messages changed): an INT8 model runs one text at a time, as
        # a server scores one message.
        self.texts_per_run: int | None = 1 if meta.get("quant") == "int8" else None

    def embed(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Return one float32 vector per text, shape ``(N, D)``, pooled like
        ``SentenceEmbedder``."""
        self._require("encoder", "embeddings")
        vectors = []
        batch_size = self.texts_per_run or batch_size
        for start in range(0, len(texts), batch_size):
            batch = self._tokenize(texts[start : start + batch_size], self.max_length)
            hidden = torch.from_numpy(self._run(batch))  # (B, T, D)
            mask = torch.from_numpy(batch["attention_mask"])  # (B, T)
            vectors.append(pool(hidden, mask, self.pooling, self.normalize).numpy())  # (B, D)
        if not vectors:
            return np.zeros((0, int(self.config.hidden_size)), dtype=np.float32)
        return np.concatenate(vectors)

    def classify(self, texts: Sequence[str], batch_size: int = 32) -> list[dict[str, float]]:
        """Return each text's label probabilities (softmax over the logits), labels
        named by the config's ``id2label``."""
        self._require("classifier", "classification")
        labels = [self.config.id2label[i] for i in range(int(self.config.num_labels))]
        results = []
        batch_size = self.texts_per_run or batch_size
        for start in range(0, len(texts), batch_size):
            batch = self._tokenize(texts[start : start + batch_size], CLASSIFY_MAX_LENGTH)
            logits = self._run(batch)  # (B, L)
            exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
            probabilities = exp / exp.sum(axis=-1, keepdims=True)  # (B, L)
            results += [dict(zip(labels, map(float, row), strict=True)) for row in probabilities]
        return results

    def _require(self, kind: str, what: str) -> None:
        if self.output != OUTPUTS[kind]:
            raise LmforgeError(
                f"{self.path} holds a model whose output is '{self.output}'; {what} needs "
                f"an exported {kind} (output '{OUTPUTS[kind]}')."
            )

    def _tokenize(self, texts: Sequence[str], max_length: int) -> dict[str, np.ndarray]:
        return self.tokenizer(list(texts), padding=True, truncation=True,
                              max_length=max_length, return_tensors="np")  # fmt: skip

    def _run(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        feed = {name: batch[name].astype(np.int64) for name in self.inputs}
        return self.session.run([self.output], feed)[0]
