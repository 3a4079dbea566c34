"""Where training starts and what pulls it back: ``model.init_from`` loads the trained
weights of an earlier run (a LoRA adapter with its head, or a whole model) into a freshly
built model, and ``train.proximal_mu`` adds FedProx's proximal term (Li et al., 2020),
``mu/2 * ||w - w_start||^2``, to every step's gradient as ``mu * (w - w_start)``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from lmforge.errors import LmforgeError
from lmforge.hub import resolve

ADAPTER_WEIGHTS = "adapter_model.safetensors"


def load_start_weights(model: Any, ref: str, weights_subfolder: str = "") -> None:
    """Load the trained weights saved in ``ref`` into ``model`` (already built with its
    method applied): the adapter and head of a LoRA run, or every weight of a full one.

    Raises:
        LmforgeError: ``ref`` holds no weights of this kind, or their names or shapes do
            not fit this model (another base model or method).
    """
    from safetensors.torch import load_file

    given = Path(ref)  # a folder of weights alone will do (a federated site's start)
    folder = given if given.is_dir() and any(given.glob("*.safetensors")) else resolve(ref).path
    adapter = folder / ADAPTER_WEIGHTS
    if hasattr(model, "peft_config"):
        if not adapter.is_file():
            raise LmforgeError(f"model.init_from: {ref!r} holds no LoRA adapter "
                               f"({ADAPTER_WEIGHTS}) but method.name is lora; start from a "
                               "LoRA run of this model")  # fmt: skip
        from peft import set_peft_model_state_dict

        try:
            loaded = set_peft_model_state_dict(model, load_file(adapter))
        except RuntimeError as error:  # a shape that does not fit
            detail = str(error).splitlines()[0]
            raise LmforgeError(
                f"model.init_from: {ref!r} does not fit this model ({detail}); "
                "start from a run of the same model and method"
            ) from None
        trained = {name for name, p in model.named_parameters() if p.requires_grad}
        unfit = [*getattr(loaded, "unexpected_keys", []),
                 *(set(getattr(loaded, "missing_keys", [])) & trained)]  # fmt: skip
        if unfit:
            raise LmforgeError(f"model.init_from: {ref!r} does not fit this model's adapters "
                               f"({', '.join(sorted(unfit)[:3])}); start from a run of the "
                               "same model and method")  # fmt: skip
        return
    files = sorted((Path(folder) / weights_subfolder).glob("*.safetensors"))
    if adapter.is_file() or not files:
        raise LmforgeError(f"model.init_from: {ref!r} holds no whole-model weights "
                           "(*.safetensors); start from a run of the same model and "
                           "method")  # fmt: skip
    state: dict[str, torch.Tensor] = {}
    for file in files:
        state |= load_file(file)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        detail = (str(error).splitlines()[1:2] or [str(error)])[0].strip()  # the first key
        raise LmforgeError(f"model.init_from: {ref!r} does not fit this model ({detail}); "
                           "start from a run of the same model and method") from None  # fmt: skip


class ProximalTerm:
    """A pull toward the starting weights, added to the gradients of a step: FedProx's
    (one strength ``mu`` for every weight) or EWC's (``mu`` times each weight's own
    importance, the Fisher information of the data trained before)."""

    def __init__(
        self, model: torch.nn.Module, mu: float, importance: dict[str, torch.Tensor] | None = None
    ) -> None:
        self.mu = mu
        self.anchors = [(p, p.detach().clone(), None if importance is None else importance[name])
                        for name, p in model.named_parameters() if p.requires_grad]  # fmt: skip

    def add_to_gradients(self) -> None:
        """``grad += mu * (w - w_start)`` (times the weight's importance) for every trained
        weight."""
        with torch.no_grad():
            for weight, anchor, importance in self.anchors:
                pull = (weight - anchor) * self.mu
                if importance is not None:
                    pull.mul_(importance.to(pull.device))
                weight.grad = pull if weight.grad is None else weight.grad.add_(pull)
