"""Child process of ``llamacpp_check.probe_llama_cpp``: load a GGUF file, decode a few tokens.

Run as a script (``python _llamacpp_probe.py FILE.gguf``), so it imports only llama_cpp,
not lmforge. It prints the build's compiled features first and flushes, so the parent still
has them when a kernel kills this process. The prompt is several tokens long so that both
the batched matrix multiply (prompt) and the one-row one (decode) run.
"""

import sys


def main(gguf: str) -> None:
    import llama_cpp

    print(llama_cpp.llama_print_system_info().decode(errors="replace").strip(), flush=True)
    model = llama_cpp.Llama(model_path=gguf, n_ctx=128, n_batch=64, n_threads=2, verbose=False)
    tokens = model.tokenize(b"The quick brown fox jumps over the lazy dog because")
    model.eval(tokens)
    for _ in range(3):
        model.eval([model.sample(temp=0.0)])
    print(f"decoded {len(tokens)} prompt tokens and 3 new ones", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
