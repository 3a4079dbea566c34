"""Every module imports on its own, with only the core dependencies."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import lmforge

MODULES = sorted(info.name for info in pkgutil.walk_packages(lmforge.__path__, prefix="lmforge."))


def test_the_package_has_modules() -> None:
    assert len(MODULES) > 20


@pytest.mark.parametrize("name", MODULES)
def test_module_imports(name: str) -> None:
    importlib.import_module(name)


def test_config_package_does_not_import_torch() -> None:
    import subprocess
    import sys

    code = "import sys, lmforge.config; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "False", done.stderr
