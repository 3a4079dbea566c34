"""Every module imports on its own, with only the core dependencies."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
from pathlib import Path

import pytest

import lmforge

MODULES = sorted(info.name for info in pkgutil.walk_packages(lmforge.__path__, prefix="lmforge."))
# Modules of an extra that lives in an environment of its own (`make flower`, which
# `make test` runs): imported by that environment's interpreter.
ELSEWHERE = {"lmforge.federated.flower_app": Path(__file__).parents[1] / ".venv-flower"}


def test_the_package_has_modules() -> None:
    assert len(MODULES) > 20


@pytest.mark.parametrize("name", MODULES)
def test_module_imports(name: str) -> None:
    if name in ELSEWHERE:
        python = ELSEWHERE[name] / "bin" / "python"
        done = subprocess.run([str(python), "-c", f"import {name}"], capture_output=True,
                              text=True, timeout=300)  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        return
    importlib.import_module(name)


@pytest.mark.parametrize("module", ["lmforge.config", "lmforge.cli.main"])
def test_the_config_and_the_command_line_do_not_load_the_engine(module: str) -> None:
    """The CLI imports a command's engine when the command runs (docs/architecture.md):
    `lmforge --help` and the light commands start in half a second, not three."""
    import subprocess
    import sys

    heavy = ("torch", "transformers", "mlflow", "lmforge.pipeline.steps")
    code = f"import sys, {module}; print([m for m in {heavy!r} if m in sys.modules])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


def test_the_package_layers_hold_and_no_package_imports_in_a_cycle() -> None:
    """pyproject.toml's import-linter contracts (docs/architecture.md); CI runs `make
    test`, so the layers are checked there too, not only by `make lint`."""
    import subprocess
    import sys
    from pathlib import Path

    tool = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run([str(tool)], capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).parents[1])  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:]
    assert "Contracts: 2 kept, 0 broken." in done.stdout


def test_every_third_party_import_is_a_declared_dependency() -> None:
    """deptry over src/: `pip install .` alone brings what every core command imports."""
    import subprocess
    import sys
    from pathlib import Path

    tool = Path(sys.executable).parent / "deptry"
    done = subprocess.run([str(tool), "src"], capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).parents[1])  # fmt: skip
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
