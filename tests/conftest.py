"""Shared fixtures: a temporary LMFORGE_HOME for the whole session and tiny models.

Unit tests run on tiny random models (2 layers, width 64) that carry the real zoo
tokenizers; the ``integration`` tier loads the real embedded models. The session
home is shared so SmolLM2 is converted once per test run; tests that need an empty
home use ``fresh_home``.

``make test`` runs the tests on two processes (pytest-xdist, ``--dist loadfile``): each
test file stays on one process, so its module fixtures (servers) start once. A session
fixture too costly to build once per process is built once per run under a file lock
(``sentiment_run`` in tests/integration/conftest.py).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import share_guard_exports


@pytest.fixture(scope="session", autouse=True)
def session_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("lmforge-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LMFORGE_HOME", str(home))
        patch.delenv("LMFORGE_TRACKING_URI", raising=False)
        patch.setenv("HF_HUB_OFFLINE", "1")
        yield home


@pytest.fixture(autouse=True)
def _task_registry_restored() -> Iterator[None]:
    """Tasks a test registers (tests/test_train_runs.py, tests/test_eval_tasks.py) are gone
    after it, so the names that error messages list do not depend on which tests ran
    before in the process."""
    from lmforge.config import tasks
    from lmforge.evaluate import tasks as eval_tasks

    registries = (tasks._REGISTRY, eval_tasks._REGISTRY)
    before = [dict(registry) for registry in registries]
    yield
    for registry, entries in zip(registries, before, strict=True):
        registry.clear()
        registry.update(entries)


@pytest.fixture(scope="session")
def empty_store_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An initialized, empty mlflow.db; copying it saves ~1.5 s of schema creation a test."""
    from lmforge.track import get_client

    home = tmp_path_factory.mktemp("template-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LMFORGE_HOME", str(home))
        patch.delenv("LMFORGE_TRACKING_URI", raising=False)
        get_client().search_experiments(max_results=1)
    return home / "mlflow.db"


@pytest.fixture
def home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, empty_store_db: Path, session_home: Path
) -> Path:
    """A fresh LMFORGE_HOME for one test, with an empty MLflow store ready. The guard's
    ONNX encoder exports are shared with the session home (each takes ~15 s to make)."""
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(empty_store_db, home / "mlflow.db")
    share_guard_exports(home, session_home)
    monkeypatch.setenv("LMFORGE_HOME", str(home))
    monkeypatch.delenv("LMFORGE_TRACKING_URI", raising=False)
    return home


@pytest.fixture(scope="session")
def tiny_causal_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer LLaMA with SmolLM2's tokenizer and chat template."""
    from lmforge.hub import build_tiny_causal_lm

    return build_tiny_causal_lm(tmp_path_factory.mktemp("tiny") / "causal-lm")


@pytest.fixture(scope="session")
def llama_cpp_runs() -> None:
    """Fail (not crash) every llama.cpp test when the installed build cannot decode here.

    A llama.cpp compiled for another CPU kills its process with SIGILL or SIGSEGV; the
    decode runs in a child process, so pytest reports the reason and carries on.
    """
    from lmforge.hub.llamacpp_check import probe_llama_cpp
    from lmforge.hub.zoo import ZOO, package_source

    result = probe_llama_cpp(package_source(ZOO["smollm2-135m-instruct"]), use_cache=False)
    if not result.ok:
        pytest.fail(f"llama.cpp cannot decode on this machine: {result.detail}", pytrace=False)


@pytest.fixture(scope="session")
def tiny_gguf(
    llama_cpp_runs: None, tiny_causal_lm: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The tiny LLaMA exported to GGUF (f32), for llama.cpp."""
    from lmforge.compress.to_gguf import export_gguf
    from lmforge.hub import load_causal_lm, resolve

    model, tokenizer = load_causal_lm(resolve(str(tiny_causal_lm)))
    return export_gguf(model, tokenizer, tmp_path_factory.mktemp("gguf") / "tiny.gguf", "f32")


@pytest.fixture(scope="module", params=["torch", "llamacpp"])
def tiny_served(request: pytest.FixtureRequest, tiny_causal_lm: Path) -> tuple[str, Path]:
    """``(backend, model)``: the tiny LLaMA for each serving backend (GGUF for llamacpp),
    so a server test runs once per backend."""
    if request.param == "torch":
        return "torch", tiny_causal_lm
    return "llamacpp", request.getfixturevalue("tiny_gguf")


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer BERT with MiniLM's tokenizer."""
    from lmforge.hub import build_tiny_encoder

    return build_tiny_encoder(tmp_path_factory.mktemp("tiny") / "encoder")


@pytest.fixture(scope="session")
def tiny_classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer BERT classifier (negative, neutral, positive) with MiniLM's tokenizer."""
    from lmforge.hub import build_tiny_classifier

    return build_tiny_classifier(tmp_path_factory.mktemp("tiny") / "classifier")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``gpu`` tests when there is no CUDA device, saying so."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU; none on this machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


# Keep tests quiet and deterministic on the 2-core CI machine.
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# With two pytest processes on two cores, each kernel gets one thread, and so do the
# servers and trainers they start (torch and lmforge's llama.cpp and onnxruntime read
# OMP_NUM_THREADS). Two threads each would put four busy threads on two cores, and a
# kernel's threads then wait on each other: the quickstart test ran 3.4x slower so.
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["MKL_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)  # in case a plugin imported torch before the variable was set
# pytest-xdist's workers get COLUMNS=80, and rich reads it when a console is made: the
# CLI's piped output (tested as a CI log sees it, PIPED_WIDTH wide) would wrap at 80.
os.environ.pop("COLUMNS", None)
os.environ.pop("LINES", None)
