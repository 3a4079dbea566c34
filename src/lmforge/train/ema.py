"""An exponential moving average of the trained weights (``train.ema_decay``).

Diffusion models are sampled from the average of their weights over the last few
thousand steps, not from the last step's (DDPM, Stable Diffusion): the average is
smoother than any one step of a noisy objective. The average covers the weights that
train (all of them, or LoRA adapters); the others never change. It warms up as
diffusers' ``EMAModel`` does: the decay at step n is min(decay, (1 + n) / (10 + n)), so
the random first weights are forgotten quickly.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


class WeightAverage:
    """The moving average of ``model``'s trainable parameters."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
        self.names = [name for name, _ in named]
        self.parameters = [p for _, p in named]
        self.averages = [p.detach().clone() for p in self.parameters]

    def update(self, step: int) -> None:
        """Move the average towards the weights after optimizer step ``step`` (1, 2, ...)."""
        decay = min(self.decay, (1 + step) / (10 + step))
        with torch.no_grad():
            weights = [p.detach() for p in self.parameters]
            torch._foreach_lerp_(self.averages, weights, 1 - decay)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(zip(self.names, self.averages, strict=True))

    def load_state_dict(self, averages: dict[str, torch.Tensor]) -> None:
        """Restore the averages a checkpoint saved.

        Raises:
            KeyError: a trainable parameter has no saved average.
        """
        with torch.no_grad():
            for name, average in zip(self.names, self.averages, strict=True):
                average.copy_(averages[name])

    @contextlib.contextmanager
    def applied(self) -> Iterator[None]:
        """The model holds the averaged weights inside the block, its own after it."""
        with torch.no_grad():
            own = [p.detach().clone() for p in self.parameters]
            torch._foreach_copy_([p.data for p in self.parameters], self.averages)
        try:
            yield
        finally:
            with torch.no_grad():
                torch._foreach_copy_([p.data for p in self.parameters], own)
