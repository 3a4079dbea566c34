"""One model reference, resolved in one place.

A reference is a zoo name, a local path (Hugging Face directory, PEFT adapter
directory, ``.gguf`` file), ``registry:NAME@ALIAS`` / ``registry:NAME/VERSION``, or
``run:RUN_ID``. ``resolve`` turns it into a local path plus what kind of model lives
there; it never downloads anything.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from pathlib import Path

from lmforge.data.tabular import PROCESSOR_FILE
from lmforge.data.timeseries import SERIES_PROCESSOR_FILE
from lmforge.errors import LmforgeError
from lmforge.hub.zoo import ZOO, zoo_model_dir
from lmforge.track import resolve_registry_ref, resolve_run_ref

# Model kinds, in the user's words.
CAUSAL_LM = "causal-lm"
ENCODER = "encoder"
CLASSIFIER = "classifier"
CLIP = "clip"  # a text-image dual encoder (CLIPModel, VisionTextDualEncoderModel)
DIFFUSION = "diffusion"  # a diffusers pipeline folder (model_index.json): text-to-image
ADAPTER = "adapter"
GGUF = "gguf"
CLIP_MODEL_TYPES = ("clip", "vision-text-dual-encoder")
PIPELINE_INDEX = "model_index.json"  # what makes a folder a diffusers pipeline
TABULAR = "tabular"  # an FT-Transformer or LightGBM model with its tabular processor
TABULAR_TYPES = ("ft-transformer", "lightgbm")  # a tabular model's config.json model_type
TIMESERIES = "timeseries"  # a remaining-useful-life model with its series processor
TIMESERIES_TYPES = ("rul-transformer", "rul-ridge", "rul-lightgbm")
SCORED_KINDS = (TABULAR, TIMESERIES)  # the kinds served for real-time scoring (/v1/score)


@dataclass(frozen=True)
class ResolvedModel:
    """A model reference turned into local files.

    Attributes:
        ref: the reference as the user wrote it.
        path: the Hugging Face directory, adapter directory or ``.gguf`` file.
        kind: one of ``causal-lm``, ``encoder``, ``classifier``, ``clip``, ``diffusion``,
            ``tabular``, ``timeseries``, ``adapter``, ``gguf``.
        source: ``zoo``, ``local``, ``registry`` or ``run``.
        base: for an adapter, its resolved base model.
        task_type: for an adapter, peft's task type (``CAUSAL_LM``, ``SEQ_CLS``, ...).
    """

    ref: str
    path: Path
    kind: str
    source: str
    base: ResolvedModel | None = None
    task_type: str | None = None

    @property
    def model_kind(self) -> str:
        """The kind of the model that actually runs: an adapter runs as its base's kind,
        except a classification adapter (peft task type SEQ_CLS), which runs as a
        classifier whatever its base (an encoder, or a causal LM with a head)."""
        if self.base is None:
            return self.kind
        return CLASSIFIER if self.task_type == "SEQ_CLS" else self.base.model_kind


def resolve(ref: str, *, progress: bool = True) -> ResolvedModel:
    """Resolve a model reference to local files.

    Args:
        ref: a zoo name, local path, ``registry:...`` or ``run:...`` reference.
        progress: show a progress bar if a zoo model must be converted first.

    Raises:
        LmforgeError: the reference names nothing that exists here.
    """
    ref = ref.strip()
    if ref.startswith("registry:"):
        return _resolve_path(ref, resolve_registry_ref(ref), source="registry")
    if ref.startswith("run:"):
        return _resolve_path(ref, resolve_run_ref(ref), source="run")
    if ref in ZOO:
        path = zoo_model_dir(ref, progress=progress)
        return _resolve_path(ref, path, source="zoo")
    path = Path(ref).expanduser()
    if path.exists():
        return _resolve_path(ref, path.resolve(), source="local")
    raise LmforgeError(_unknown_ref_message(ref, path))


def _unknown_ref_message(ref: str, path: Path) -> str:
    close = difflib.get_close_matches(ref, list(ZOO), n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return (
        f"unknown model reference '{ref}': it is not a zoo name ({', '.join(ZOO)}), "
        f"not an existing path (looked at {path.resolve()}), and not a 'registry:NAME@ALIAS' "
        f"or 'run:RUN_ID' reference.{hint} Run `lmforge models list` to see what is available."
    )


def _resolve_path(ref: str, path: Path, *, source: str) -> ResolvedModel:
    if path.is_file():
        if path.suffix == ".gguf":
            return ResolvedModel(ref, path, GGUF, source)
        raise LmforgeError(
            f"model reference '{ref}' points at the file {path}, which is not a .gguf file; "
            "pass a Hugging Face model directory, a PEFT adapter directory or a .gguf file."
        )
    if not _is_model_dir(path) and _is_model_dir(path / "model"):
        path = path / "model"  # a training run's output directory
    adapter_config = path / "adapter_config.json"
    if adapter_config.is_file():
        settings = _read_json(adapter_config)
        return ResolvedModel(ref, path, ADAPTER, source, base=_adapter_base(path, settings),
                             task_type=settings.get("task_type"))  # fmt: skip
    if (path / PIPELINE_INDEX).is_file():
        check_pipeline_parts(path)
        return ResolvedModel(ref, path, DIFFUSION, source)
    config_path = path / "config.json"
    if config_path.is_file():
        config = _read_json(config_path)
        if (path / PROCESSOR_FILE).is_file() and config.get("model_type") in TABULAR_TYPES:
            return ResolvedModel(ref, path, TABULAR, source)
        if (path / SERIES_PROCESSOR_FILE).is_file() and config.get("model_type") in (
                TIMESERIES_TYPES):  # fmt: skip
            return ResolvedModel(ref, path, TIMESERIES, source)
        return ResolvedModel(ref, path, model_kind_of(config), source)
    raise LmforgeError(
        f"model reference '{ref}': the directory {path} holds neither config.json (a Hugging "
        "Face model), adapter_config.json (a PEFT adapter) nor model_index.json (a diffusers "
        "pipeline); point at the model directory itself."
    )


def _is_model_dir(path: Path) -> bool:
    return any((path / name).is_file()
               for name in ("adapter_config.json", "config.json", PIPELINE_INDEX))  # fmt: skip


# The file each part of a diffusers pipeline folder keeps its settings in.
_PART_FILES = {"scheduler": "scheduler_config.json", "tokenizer": "tokenizer_config.json",
               "feature_extractor": "preprocessor_config.json"}  # fmt: skip


def check_pipeline_parts(path: Path) -> dict:
    """The ``model_index.json`` of diffusers pipeline folder ``path``, once every part it
    lists (unet, vae, text_encoder, tokenizer, scheduler...) is there.

    Raises:
        LmforgeError: a listed part is missing, naming it and the file looked for.
    """
    index = _read_json(path / PIPELINE_INDEX)
    for part, spec in index.items():
        if part.startswith("_") or not isinstance(spec, list) or spec[0] is None:
            continue  # settings, and parts the pipeline was saved without (safety_checker)
        expected = path / part / _PART_FILES.get(part, "config.json")
        if not expected.is_file():
            raise LmforgeError(
                f"diffusers pipeline {path}: its part '{part}' ({spec[-1]}) is missing: no "
                f"{expected}; copy the whole pipeline folder, or remove '{part}' from "
                f"{PIPELINE_INDEX} if the pipeline runs without it"
            )
    return index


def _adapter_base(adapter_dir: Path, settings: dict) -> ResolvedModel:
    """Resolve an adapter's base: the path peft recorded (in ``settings``, its
    adapter_config.json), else the reference lmforge kept (``lmforge_base.json``), which
    still works when the adapter moved to another machine."""
    recorded = settings.get("base_model_name_or_path")
    kept = adapter_dir / "lmforge_base.json"
    candidates = [str(recorded)] if recorded else []
    if kept.is_file():
        candidates.append(str(_read_json(kept).get("base_ref", "")))
    problems = []
    for candidate in filter(None, candidates):
        try:
            return resolve(candidate)
        except LmforgeError as err:
            problems.append(f"'{candidate}': {err}")
    if not problems:
        raise LmforgeError(
            f"{adapter_dir / 'adapter_config.json'} has no 'base_model_name_or_path'; add the "
            "base model's reference (a zoo name or path) to it."
        )
    raise LmforgeError(
        f"adapter {adapter_dir}: its base model cannot be resolved: {'; '.join(problems)}"
    )


def model_kind_of(config: dict) -> str:
    """Classify a Hugging Face ``config.json`` as causal-lm, classifier, clip or encoder."""
    architectures = config.get("architectures") or []
    if config.get("model_type") in CLIP_MODEL_TYPES:
        return CLIP
    if any(name.endswith("ForCausalLM") for name in architectures):
        return CAUSAL_LM
    if any(name.endswith("ForSequenceClassification") for name in architectures):
        return CLASSIFIER
    if config.get("is_decoder") or config.get("model_type") in {"llama", "gpt2", "qwen2"}:
        return CAUSAL_LM
    return ENCODER


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise LmforgeError(f"cannot read {path}: {err}; restore or re-create the file.") from None
    if not isinstance(data, dict):
        raise LmforgeError(f"{path} should hold a JSON object; restore or re-create the file.")
    return data
