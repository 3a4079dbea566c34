"""What a task is: how it builds its model, encodes records, batches and scores them.

The training loop in ``lmforge.train`` knows nothing about any task: it asks the task
to encode records into examples, to collate examples into batches, and for the summed
loss of a batch. Every task, built-in or a user's, is an entry of the registry in
``lmforge.config.tasks``, which also holds its settings.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from transformers import AutoConfig, AutoTokenizer

from lmforge.config import RunConfig
from lmforge.config.tasks import TaskSettings, task_entry
from lmforge.data.tabular import Table
from lmforge.hub.load import quiet_transformers

Example = dict[str, Any]
"""One encoded example: ``input_ids`` plus task-specific targets (``labels``/``label``)."""
Batch = dict[str, torch.Tensor]
IGNORE_INDEX = -100  # label value the loss skips (prompt tokens, padding)


@dataclass(frozen=True)
class EncodeOptions:
    """How to turn records into examples."""

    max_length: int
    overlong: str = "truncate"  # "truncate" | "drop"
    packing: bool = False  # examples will be packed into max_length sequences
    labels: tuple[str, ...] = ()  # classify: the label set, in index order


@dataclass
class EncodeStats:
    """What encoding did to the data, reported as run metrics."""

    examples: int = 0
    truncated: int = 0
    dropped_overlong: int = 0
    dropped_empty: int = 0

    def metrics(self, prefix: str) -> dict[str, float]:
        return {f"{prefix}/{key}": float(value) for key, value in vars(self).items()}


class Task(Protocol):
    """A training objective. Implementations hold no state between calls."""

    name: str
    settings: type[TaskSettings]  # what the run config's task section takes
    formats: tuple[str, ...]  # record formats it reads (lmforge.data.records)
    label_kind: str | None  # "class" | "float" | None: what record labels hold
    model_kinds: tuple[str, ...]  # hub kinds its backbone may be
    packable: bool  # examples may be packed into one sequence
    peft_task_type: str | None  # peft's TaskType for LoRA ("CAUSAL_LM", "SEQ_CLS", None)
    head_modules: tuple[str, ...]  # freshly initialized heads that must train under LoRA
    frozen_modules: tuple[str, ...]  # modules that never train, whatever the method
    merge_on_save: bool  # LoRA adapters are merged into the saved model, not saved apart
    weights_subfolder: str  # where a whole model's weights go in its directory ("": the top)

    def configured(self, config: RunConfig) -> Task:
        """This task set up for a run from ``config.task`` (its settings, a teacher...);
        a task with nothing to set up returns itself."""
        ...

    def load_processor(self, path: str | Path | None) -> Any:
        """What turns records into model inputs and is saved beside the model: the model's
        tokenizer (``text_tokenizer``), or a processor holding a tokenizer and an image
        processor. A task that builds its model from its settings (``builds_model``) is
        given None when model.ref is unset."""
        ...

    def build_model(
        self, path: str, *, labels: Sequence[str], dtype: torch.dtype, pretrained: bool = True
    ) -> Any:
        """Load the trainable model (with its task head) from a local model directory;
        ``pretrained=False`` gives the same architecture with random weights."""
        ...

    def encode(
        self, records: Iterable[dict] | Table, tokenizer: Any, options: EncodeOptions
    ) -> tuple[list[Example], EncodeStats]:
        """Turn canonical records (a table's rows, for the tabular tasks) into examples
        (may drop, truncate or split them)."""
        ...

    def collate(self, examples: Sequence[Example], tokenizer: Any, seed: int) -> Batch:
        """Pad examples into a batch; ``seed`` drives any randomness (MLM masking)."""
        ...

    def target_count(self, batch: Batch) -> int:
        """How many targets the batch's summed loss covers (tokens or examples)."""
        ...

    def loss(self, model: Any, batch: Batch) -> torch.Tensor:
        """The batch's loss summed over its targets (the loop divides by the count)."""
        ...

    def evaluate(self, model: Any, batches: Iterable[Batch]) -> dict[str, Any]:
        """Validation metrics over ``batches`` (floats; lists for tables)."""
        ...


@runtime_checkable
class FittedTask(Protocol):
    """A task whose model is fitted in one call on all the examples (gradient-boosted
    trees), not trained step by step by the loop; it encodes, collates and evaluates as
    a ``Task`` does."""

    name: str

    def fit(self, train: Sequence[Example], validation: Sequence[Example],
            progress: Any) -> Any:  # fmt: skip
        """The fitted model (it has ``save_pretrained``); ``progress`` as the loop's."""
        ...

    def collate(self, examples: Sequence[Example], tokenizer: Any, seed: int) -> Batch: ...

    def evaluate(self, model: Any, batches: Iterable[Batch]) -> dict[str, Any]: ...


@runtime_checkable
class MeasuredTask(Protocol):
    """A task whose loss comes with more to log at every step (DPO's reward accuracy).
    Its ``progress_metrics`` attribute, when it has one, names those shown beside the loss
    after each step."""

    def loss_and_metrics(
        self, model: Any, batch: Batch
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The batch's summed loss, and sums of other metrics over the same targets; the
        loop divides each by the step's target count and logs it as ``train/NAME``."""
        ...


@runtime_checkable
class PreparedTask(Protocol):
    """A task that scores its examples once with the starting model before training
    (DPO's precomputed reference log-probabilities)."""

    def prepare(self, model: Any, examples: list[Example], tokenizer: Any,
                device: torch.device, batch_size: int) -> None:  # fmt: skip
        """Add to each example what it needs from ``model`` as it is before training."""
        ...


@runtime_checkable
class RolloutTask(Protocol):
    """A task whose batches the model being trained completes before each step (GRPO
    samples answers to a batch of prompts and scores them); the loop calls ``rollout`` on
    every collated batch and trains on what it returns."""

    def rollout(self, model: Any, batch: Batch) -> Batch:
        """The batch to train on: ``batch`` completed by ``model`` as it is now."""
        ...


def get_task(name: str) -> Task:
    """A new instance of the registered task ``name`` (``lmforge.config.tasks``).

    Raises:
        LmforgeError: no task has that name.
    """
    task: Task = task_entry(name).build()
    return task


def text_tokenizer(path: str | Path) -> Any:
    """The tokenizer saved in model directory ``path``: what text tasks encode with."""
    quiet_transformers()
    return AutoTokenizer.from_pretrained(path)


def load_weights(
    auto_class: Any, path: str, *, dtype: torch.dtype, pretrained: bool, config: Any = None
) -> Any:
    """``auto_class`` from ``path``: its trained weights, or freshly initialized ones."""
    if pretrained:
        extra = {"config": config} if config is not None else {}
        return auto_class.from_pretrained(path, dtype=dtype, **extra)

    return auto_class.from_config(config or AutoConfig.from_pretrained(path), dtype=dtype)


def pad(rows: Sequence[Sequence[int]], value: int) -> torch.Tensor:
    """Right-pad integer rows to the longest one: ``(B, T)``."""
    longest = max(len(row) for row in rows)
    return torch.tensor([list(row) + [value] * (longest - len(row)) for row in rows])


def fit_length(ids: list[int], options: EncodeOptions, stats: EncodeStats) -> list[int] | None:
    """Apply ``task.max_length``: the ids, truncated ids, or None when dropped."""
    if len(ids) <= options.max_length:
        return ids
    if options.overlong == "drop":
        stats.dropped_overlong += 1
        return None
    stats.truncated += 1
    return ids[: options.max_length]
