"""What a model is, read from its files without loading the weights."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gguf import GGUFReader
from safetensors import safe_open

from lmforge.hub.resolve import ADAPTER, DIFFUSION, GGUF, PIPELINE_INDEX, ResolvedModel

WEIGHT_SUFFIXES = (".safetensors", ".gguf", ".bin")


@dataclass
class ModelInfo:
    """A model's facts for ``lmforge models list/show``."""

    ref: str
    kind: str
    source: str
    path: str
    architecture: str | None
    parameters: int | None
    size_bytes: int
    context_length: int | None
    vocab_size: int | None
    chat_template: bool
    base: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def describe(model: ResolvedModel) -> ModelInfo:
    """Collect a resolved model's architecture, parameter count and size on disk."""
    if model.kind == GGUF:
        return _describe_gguf(model)
    config: dict[str, Any] = {}
    config_file = model.path / "config.json"
    if config_file.is_file():
        config = json.loads(config_file.read_text())
    architectures = config.get("architectures") or [config.get("model_type")]
    parameters = safetensors_parameters(model.path)
    if model.kind == DIFFUSION:  # a pipeline folder: the parts' weights, one folder each
        architectures = [json.loads((model.path / PIPELINE_INDEX).read_text()).get("_class_name")]
        counts = [safetensors_parameters(part) for part in model.path.iterdir() if part.is_dir()]
        parameters = sum(count for count in counts if count) or None
    return ModelInfo(
        ref=model.ref,
        kind=model.kind,
        source=model.source,
        path=str(model.path),
        architecture=architectures[0],
        parameters=parameters,
        size_bytes=disk_size(model.path),
        context_length=config.get("max_position_embeddings"),
        vocab_size=config.get("vocab_size"),
        chat_template=_has_chat_template(model),
        base=model.base.ref if model.kind == ADAPTER and model.base else None,
    )


def _describe_gguf(model: ResolvedModel) -> ModelInfo:
    reader = GGUFReader(model.path)

    def field(name: str) -> Any:
        value = reader.fields.get(name)
        return None if value is None else value.contents()

    architecture = field("general.architecture")
    tokens = field("tokenizer.ggml.tokens")
    return ModelInfo(
        ref=model.ref,
        kind=model.kind,
        source=model.source,
        path=str(model.path),
        architecture=architecture,
        parameters=sum(int(tensor.n_elements) for tensor in reader.tensors),
        size_bytes=disk_size(model.path),
        context_length=field(f"{architecture}.context_length"),
        vocab_size=len(tokens) if tokens is not None else None,
        chat_template=field("tokenizer.chat_template") is not None,
    )


def disk_size(path: Path) -> int:
    """Bytes used by a file, or by every file under a directory."""
    if path.is_file():
        return path.stat().st_size
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())


def safetensors_parameters(model_dir: Path) -> int | None:
    """Count parameters from safetensors headers (no weights are read)."""
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        return None
    total = 0
    for file in files:
        with safe_open(str(file), framework="pt") as handle:
            for key in handle.keys():  # noqa: SIM118 - safe_open is not a dict
                count = 1
                for dim in handle.get_slice(key).get_shape():
                    count *= dim
                total += count
    return total


def gguf_parameters(gguf_path: Path) -> int:
    """Count parameters in a GGUF file from its tensor table."""
    reader = GGUFReader(gguf_path)
    return sum(int(tensor.n_elements) for tensor in reader.tensors)


def _has_chat_template(model: ResolvedModel) -> bool:
    for directory in (model.path, model.base.path if model.base else None):
        if directory is None:
            continue
        if (directory / "chat_template.jinja").is_file():
            return True
        tokenizer_config = directory / "tokenizer_config.json"
        if tokenizer_config.is_file() and "chat_template" in json.loads(
            tokenizer_config.read_text()
        ):
            return True
    return False
