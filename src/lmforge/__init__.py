"""lmforge: an open engine for the large-model lifecycle.

Adapt an open Transformer model to a domain, track every run in MLflow, compress and
export it, explain it, and serve it behind an OpenAI-compatible API.
"""

import os
import warnings

# Nothing is ever fetched from a model hub at run time: every model is embedded,
# local, or registered. Set before transformers/huggingface_hub are imported anywhere.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

# peft calls a transformers method that transformers 5 deprecated; not the user's concern.
warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated")
# torch deprecates the quantized tensors behind torch.ao's dynamic INT8 layers, still the
# fastest INT8 path on CPU (hub/smoothquant.py); every int8 compress, load and serve says so.
warnings.filterwarnings(
    "ignore",
    message="torch.quantize_per_tensor, torch.quantize_per_channel and other quantized tensor",
    category=UserWarning,
)

__version__ = "0.1.0"
