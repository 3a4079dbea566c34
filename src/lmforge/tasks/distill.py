"""Knowledge distillation: a student learns a teacher's output distribution.

The loss per target (an example for classifiers, a token for causal LMs) is
``alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T)) + (1 - alpha) * CE``
with the hard labels (Hinton et al., 2015); ``T^2`` keeps the soft term's gradients the
size of the hard term's as ``T`` grows.

With ``task.distill_hidden`` above 0 each target also adds that weight times the
hidden-state loss of TinyBERT (Jiao et al., 2020): the mean squared distance, per
dimension, between the output of every student layer (and the embeddings) and the output
of the teacher layer it was copied from. It hands the student the teacher's
representations, not only its three or so output numbers: on the sentiment challenge
split a 3-layer student agreed with its teacher on 182 of 210 reviews with it (weight 1)
and 176 without (docs/compress.md).

The student starts from ``model.ref`` (by default the teacher itself), keeping
``task.student_layers`` of its layers taken evenly from first to last (DistilBERT's
initialisation). Everything else (data, batching, metrics) is the teacher's kind of
task: ``classify`` for a classifier teacher, ``sft`` or ``clm`` for a causal LM
depending on the data. The teacher runs frozen beside the student in every step.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from transformers import AutoTokenizer

from lmforge.config.tasks import DistillSettings
from lmforge.data.records import read_records
from lmforge.errors import LmforgeError
from lmforge.hub import resolve
from lmforge.runtime.modules import unwrap
from lmforge.tasks.base import (
    IGNORE_INDEX,
    Batch,
    EncodeOptions,
    EncodeStats,
    Example,
    get_task,
)


class DistillTask:
    """The ``distill`` task; ``configured`` binds it to a run's teacher and settings."""

    name = "distill"
    settings = DistillSettings

    def __init__(self) -> None:
        self.inner: Any = None
        self.teacher_ref = ""
        self.teacher: Any = None
        self.student_layers: int | None = None
        self.temperature, self.alpha, self.hidden_weight = 2.0, 0.5, 0.0
        self.kept: list[int] = []  # the teacher layer each student layer was copied from
        self.order: torch.Tensor | None = None  # teacher logit index of each student label

    def configured(self, config: Any) -> DistillTask:
        """This task for ``config``: its teacher resolved and the inner task chosen."""

        settings = config.task
        assert isinstance(settings, DistillSettings)
        self.teacher_ref = settings.teacher or config.model.ref
        teacher = resolve(self.teacher_ref)
        kind = teacher.model_kind
        if kind == "classifier":
            self.inner = get_task("classify")
        elif kind == "causal-lm":
            self.inner = get_task("clm" if _is_text(config) else "sft")
        else:
            raise LmforgeError(
                f"task.teacher: '{self.teacher_ref}' is a {kind} model; distill teaches from a "
                "classifier or a causal LM."
            )
        self.teacher_path = teacher.path
        self.student_layers = settings.student_layers
        self.temperature, self.alpha = settings.temperature, settings.distill_alpha
        self.hidden_weight = settings.distill_hidden
        for name in ("formats", "label_kind", "model_kinds", "packable", "peft_task_type",
                     "head_modules", "frozen_modules", "merge_on_save",
                     "weights_subfolder"):  # fmt: skip
            setattr(self, name, getattr(self.inner, name))
        return self

    # --- model ---------------------------------------------------------------------

    def load_processor(self, path: str | Path) -> Any:
        return self.inner.load_processor(path)

    def build_model(
        self, path: str, *, labels: Sequence[str], dtype: torch.dtype, pretrained: bool = True
    ) -> Any:
        teacher = self.inner.build_model(str(self.teacher_path), labels=labels, dtype=dtype)
        self.teacher = teacher.eval().requires_grad_(False)
        if labels:
            self.order = _label_order(teacher, labels, self.teacher_ref)
        student = self.inner.build_model(path, labels=labels, dtype=dtype, pretrained=pretrained)
        _check_vocabularies(path, self.teacher_path, self.teacher_ref)
        if self.student_layers is not None:
            self.kept = keep_layers(student, self.student_layers)
        return student

    # --- data: the inner task's ----------------------------------------------------

    def encode(
        self, records: Iterable[dict], tokenizer: Any, options: EncodeOptions
    ) -> tuple[list[Example], EncodeStats]:
        return self.inner.encode(records, tokenizer, options)

    def collate(self, examples: Sequence[Example], tokenizer: Any, seed: int) -> Batch:
        return self.inner.collate(examples, tokenizer, seed)

    def target_count(self, batch: Batch) -> int:
        return self.inner.target_count(batch)

    def evaluate(self, model: Any, batches: Iterable[Batch]) -> dict[str, Any]:
        return self.inner.evaluate(model, batches)

    # --- loss ----------------------------------------------------------------------

    def loss(self, model: Any, batch: Batch) -> torch.Tensor:
        self.teacher.to(batch["input_ids"].device)
        states = self.hidden_weight > 0
        if "label" in batch:
            inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
            student_out = model(**inputs, output_hidden_states=states)
            with torch.no_grad():
                teacher_out = self.teacher(**inputs, output_hidden_states=states)
            student, teacher = student_out.logits.float(), teacher_out.logits.float()  # (B, L)
            if self.order is not None:
                teacher = teacher[:, self.order]
            targets = batch["label"]
            # each example counts once: its tokens' distances are averaged
            mask = batch["attention_mask"].float()
            weights = mask / mask.sum(1, keepdim=True)  # (B, T)
        else:
            student, targets, student_out = _token_logits(model, batch, states)  # (N, V), (N,)
            with torch.no_grad():
                teacher, _, teacher_out = _token_logits(self.teacher, batch, states)
            # each target token counts once: the positions that predict one
            weights = F.pad((batch["labels"][:, 1:] != IGNORE_INDEX).float(), (0, 1))  # (B, T)
        loss = distillation_loss(student, teacher, targets, self.temperature, self.alpha)
        if states:
            hidden = hidden_state_loss(
                student_out.hidden_states, teacher_out.hidden_states, self.kept, weights
            )
            loss = loss + self.hidden_weight * hidden
        return loss


def distillation_loss(
    student: torch.Tensor, teacher: torch.Tensor, targets: torch.Tensor,
    temperature: float, alpha: float,
) -> torch.Tensor:  # fmt: skip
    """Summed soft (KL at ``temperature``) plus hard (cross-entropy) loss over N targets."""
    soft = F.kl_div(
        F.log_softmax(student / temperature, dim=-1),
        F.log_softmax(teacher / temperature, dim=-1),
        reduction="sum",
        log_target=True,
    )
    hard = F.cross_entropy(student, targets, reduction="sum")
    return alpha * temperature**2 * soft + (1 - alpha) * hard


def hidden_state_loss(
    student: Sequence[torch.Tensor], teacher: Sequence[torch.Tensor], kept: Sequence[int],
    weights: torch.Tensor,
) -> torch.Tensor:  # fmt: skip
    """Summed over the layer pairs (embeddings, then student layer ``j`` against teacher
    layer ``kept[j]``): the mean squared distance per dimension at each position, weighted
    by ``weights`` (B, T) and summed."""
    pairs = [(0, 0), *((j + 1, k + 1) for j, k in enumerate(kept))]
    total = torch.zeros((), device=weights.device)
    for s, t in pairs:
        distance = (student[s].float() - teacher[t].float()).pow(2).mean(-1)  # (B, T)
        total = total + (distance * weights).sum()
    return total


def _token_logits(model: Any, batch: Batch, states: bool = False) -> tuple[Any, Any, Any]:
    """Vocabulary logits at the positions that have a next-token target, their targets,
    and the backbone's output (with every layer's hidden states when ``states``)."""

    lm = unwrap(model)
    backbone = getattr(lm, lm.base_model_prefix)
    inputs = {
        k: v for k, v in batch.items() if k in {"input_ids", "attention_mask", "position_ids"}
    }
    output = backbone(**inputs, use_cache=False, output_hidden_states=states)
    hidden = output.last_hidden_state  # (B, T, C)
    targets = batch["labels"][:, 1:]  # (B, T-1)
    keep = targets != IGNORE_INDEX
    return lm.get_output_embeddings()(hidden[:, :-1][keep]).float(), targets[keep], output


def keep_layers(model: Any, count: int) -> list[int]:
    """Keep ``count`` transformer layers, evenly spaced from the first to the last.

    Returns:
        The indices kept.

    Raises:
        LmforgeError: ``count`` is not between 1 and the model's layer count.
    """

    network = unwrap(model)
    backbone = getattr(network, network.base_model_prefix)
    holder = backbone.encoder if hasattr(backbone, "encoder") else backbone
    layers = holder.layer if hasattr(holder, "layer") else holder.layers
    total = len(layers)
    if not 1 <= count <= total:
        raise LmforgeError(f"task.student_layers: {count} is not between 1 and the teacher's "
                           f"{total} layers")  # fmt: skip
    kept = [round(i * (total - 1) / (count - 1)) for i in range(count)] if count > 1 else [0]
    modules = torch.nn.ModuleList(layers[i] for i in kept)
    for new_index, layer in enumerate(modules):
        attention = getattr(layer, "self_attn", None)
        if attention is not None and hasattr(attention, "layer_idx"):
            attention.layer_idx = new_index  # the KV cache is indexed by position in the stack
    if hasattr(holder, "layer"):
        holder.layer = modules
    else:
        holder.layers = modules
    config = network.config
    config.num_hidden_layers = count
    if getattr(config, "layer_types", None):
        config.layer_types = [config.layer_types[i] for i in kept]
    return kept


def _label_order(teacher: Any, labels: Sequence[str], ref: str) -> torch.Tensor:
    known = {str(name): int(index) for name, index in teacher.config.label2id.items()}
    missing = [label for label in labels if label not in known]
    if missing:
        raise LmforgeError(
            f"task.teacher: '{ref}' does not know the labels {missing} of the training data "
            f"(its labels: {sorted(known)}); distill on data of the teacher's task."
        )
    return torch.tensor([known[label] for label in labels])


def _check_vocabularies(student: str, teacher: Any, teacher_ref: str) -> None:
    """Soft targets are compared token by token: both sides must share one vocabulary."""
    if Path(student).resolve() == Path(teacher).resolve():
        return

    student_vocab = AutoTokenizer.from_pretrained(student).get_vocab()
    teacher_vocab = AutoTokenizer.from_pretrained(teacher).get_vocab()
    if student_vocab != teacher_vocab:
        raise LmforgeError(
            f"task.teacher: '{teacher_ref}' and the student model.ref '{student}' use "
            f"different tokenizers ({len(teacher_vocab)} vs {len(student_vocab)} tokens); "
            "distillation compares their outputs token by token, so pick a student built "
            "on the teacher's tokenizer (or leave model.ref as the teacher and set "
            "task.student_layers)."
        )


def _is_text(config: Any) -> bool:
    """Whether a causal-LM distillation reads plain text (clm) rather than dialogs (sft)."""

    if config.data.format != "auto":
        return bool(config.data.format == "text")
    records, _ = read_records(config.data.train_path, source_name="data.train")
    return "text" in records[0] and "messages" not in records[0]
