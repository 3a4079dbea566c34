"""The training-task registry: each task's name, its own settings and where its code lives.

One entry per task is the single source of its name, the data formats it reads, whether
its examples can be packed, and the settings a run config's ``task:`` section accepts
(a pydantic model selected by ``task.name``). The config schema, error messages, `--help`
texts and `lmforge config schema` read them from here.

Built-in tasks name their code by import path (``lmforge.tasks.sft:SftTask``), so reading
a config never imports torch. A user's task registers with ``register_task`` (or
``lmforge.tasks.register_task``); an installed package adds one through the
``lmforge.tasks`` entry point group, the way pytest and MLflow plugins do::

    [project.entry-points."lmforge.tasks"]
    my-task = "my_package.task:MyTask"   # a class with a ``settings`` attribute

``MyTask.settings`` is a ``TaskSettings`` subclass whose ``name`` is ``Literal["my-task"]``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, get_args, get_origin

from pydantic import Field, create_model, model_validator

from lmforge.config.plugins import installed_plugins
from lmforge.config.section import Section, unknown_name
from lmforge.errors import LmforgeError

ENTRY_POINT_GROUP = "lmforge.tasks"


class TaskSettings(Section):
    """What every task takes; a task's own settings subclass this and fix ``name``."""

    # what the registry reads off the class (not config keys)
    formats: ClassVar[tuple[str, ...]] = ()  # record formats it reads (lmforge.data.records)
    packable: ClassVar[bool] = False  # its examples may be packed into one sequence
    class_labels: ClassVar[bool] = False  # its data has a label set (data.labels)
    builds_model: ClassVar[bool] = False  # builds its model from settings: model.ref optional

    name: str = Field(description="Task to train (a registered task name).")
    max_length: int = Field(
        default=512, gt=0, description="Longest tokenized example; longer ones are truncated."
    )


class SftSettings(TaskSettings):
    """Supervised fine-tuning on conversations: the loss on the assistant's answers."""

    formats = ("messages", "alpaca")
    packable = True
    name: Literal["sft"]
    train_on_prompt: bool = Field(
        default=False,
        description="Also compute the loss on prompt tokens, not just the answer.",
    )


class DpoSettings(TaskSettings):
    """Preference tuning (DPO or IPO): chosen answers made likelier than rejected ones."""

    formats = ("preference",)
    name: Literal["dpo"]
    beta: float = Field(
        default=0.1,
        gt=0,
        description="How far the model may move from the reference: the implicit reward is "
        "beta times the log-likelihood ratio (sigmoid); ipo's margin target is 1/(2 beta).",
    )
    loss: Literal["sigmoid", "ipo"] = Field(
        default="sigmoid",
        description="sigmoid: DPO's -log sigmoid(reward margin); ipo: IPO's squared distance "
        "of the per-token log-ratio margin from 1/(2 beta) (Azar et al., 2023).",
    )
    nll_weight: float = Field(
        default=0.0,
        ge=0,
        description="Add this times the chosen answer's mean token negative log-likelihood "
        "to each pair's loss (RPO, Pang et al., 2024): DPO alone can lower both answers' "
        "likelihood while it widens their gap; this keeps the chosen one likely. 0: off.",
    )
    reference: Literal["adapter_off", "precomputed"] | None = Field(
        default=None,
        description="Where the reference log-probabilities come from: adapter_off computes "
        "them every step with the LoRA adapter disabled (no second model held); precomputed "
        "scores every pair once before training (faster steps; the only way for full "
        "fine-tuning or a run that starts from model.init_from). null: adapter_off for a "
        "fresh LoRA adapter, else precomputed.",
    )


class RewardSpec(Section):
    """One reward function of a ``grpo`` run and its weight in the total reward."""

    name: str = Field(description="A registered reward: code_tests, keywords, format, length, "
                      "or one added with lmforge.train.rewards.register_reward.")  # fmt: skip
    weight: float = Field(default=1.0, description="Its factor in the summed reward.")
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="Keyword arguments of the function (format: pattern; length: max_words; "
        "code_tests: timeout_s).",
    )


class GrpoSettings(TaskSettings):
    """RL with verifiable rewards (GRPO): sampled answers scored by reward functions."""

    formats = ("prompt",)
    name: Literal["grpo"]
    max_length: int = Field(
        default=512, gt=0, description="Longest prompt in tokens; longer prompts are dropped."
    )
    rewards: list[RewardSpec] = Field(
        min_length=1,
        description="What scores a completion: the weighted sum of these reward functions.",
    )
    group_size: int = Field(
        default=8,
        ge=2,
        description="Completions sampled per prompt; each is judged against its group's mean.",
    )
    max_new_tokens: int = Field(default=256, gt=0, description="Longest sampled completion.")
    temperature: float = Field(default=1.0, gt=0, description="Sampling temperature.")
    top_p: float = Field(default=1.0, gt=0, le=1, description="Nucleus sampling mass.")
    beta: float = Field(
        default=0.04,
        ge=0,
        description="Weight of the KL penalty to the reference (the model with its LoRA "
        "adapter switched off); 0: no penalty and no reference pass.",
    )
    epsilon: float = Field(
        default=0.2, gt=0, lt=1, description="Clip range of the policy ratio (PPO's epsilon)."
    )
    scale_rewards: bool = Field(
        default=True,
        description="Divide each advantage by its group's reward standard deviation (GRPO); "
        "false: rewards minus the group mean only (Dr. GRPO).",
    )
    instruction: str | None = Field(
        default=None,
        description="Text appended to every prompt on a new line (the code eval task appends "
        "'Answer with the complete function in one ```python code block.').",
    )


class ClmSettings(TaskSettings):
    """Causal language modeling on plain text (continued pretraining)."""

    formats = ("text",)
    packable = True
    name: Literal["clm"]


class MlmSettings(TaskSettings):
    """Masked language modeling for encoders (domain-adaptive pretraining)."""

    formats = ("text",)
    name: Literal["mlm"]
    mlm_probability: float = Field(
        default=0.15, gt=0, lt=1, description="Fraction of tokens masked per example."
    )


class ClassifySettings(TaskSettings):
    """Sequence classification with a fresh head over the encoder or LM."""

    formats = ("labeled",)
    class_labels = True
    name: Literal["classify"]
    num_labels: int | None = Field(
        default=None,
        ge=2,
        description="Number of classes, checked against the labels found in data.train; "
        "null takes them from the data.",
    )


class RegressSettings(TaskSettings):
    """Regression: one float per text, mean squared error."""

    formats = ("labeled",)
    name: Literal["regress"]


class DistillSettings(TaskSettings):
    """Knowledge distillation from a teacher into model.ref (the student)."""

    formats = ("labeled", "text", "messages", "alpaca")  # the teacher's task decides
    name: Literal["distill"]
    teacher: str | None = Field(
        default=None,
        description="The teacher model reference; null: model.ref is the teacher.",
    )
    student_layers: int | None = Field(
        default=None,
        ge=1,
        description="Transformer layers the student keeps, evenly spaced from model.ref's; "
        "null keeps them all.",
    )
    temperature: float = Field(
        default=2.0, gt=0, description="Softmax temperature of the soft targets."
    )
    distill_alpha: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="Weight of the soft-target loss (1 - it: the hard labels').",
    )
    distill_hidden: float = Field(
        default=0.0,
        ge=0,
        description="Weight of the hidden-state loss, the mean squared distance between each "
        "student layer's output and the teacher layer it was copied from (TinyBERT); needs "
        "student_layers. 0 turns it off.",
    )

    @model_validator(mode="after")
    def _hidden_needs_layers(self) -> DistillSettings:
        if self.distill_hidden > 0 and self.student_layers is None:
            raise ValueError(
                "task.distill_hidden: matches each student layer with the teacher layer it "
                "was copied from, so it needs task.student_layers; set it or set "
                "distill_hidden to 0"
            )
        return self


class ClipSettings(TaskSettings):
    """Contrastive text-image training (CLIP): a dual encoder, symmetric InfoNCE loss."""

    formats = ("image_text", "image_label")
    name: Literal["clip"]
    max_length: int = Field(default=64, gt=0, description="Longest tokenized caption.")
    image_size: int = Field(
        default=32,
        ge=8,
        description="Side in pixels images are resized to for an image "
        "tower built from config (a CLIP checkpoint keeps its own).",
    )
    patch_size: int = Field(default=4, ge=1, description="Built image tower: ViT patch side.")
    vision_width: int = Field(default=128, ge=8, description="Built image tower: hidden size.")
    vision_layers: int = Field(default=4, ge=1, description="Built image tower: layers.")
    vision_heads: int = Field(default=4, ge=1, description="Built image tower: attention heads.")
    vision_ref: str | None = Field(
        default=None,
        description="Take the image tower (and its image processor) from this local CLIP or "
        "ViT checkpoint instead of building one; model.ref gives the text tower.",
    )
    text_layers: int | None = Field(
        default=None,
        ge=1,
        description="Build the text tower from config (random weights, "
        "model.ref's tokenizer and architecture) with this many layers; null: model.ref's "
        "trained tower.",
    )
    text_width: int | None = Field(
        default=None, ge=8, description="Built text tower: hidden size (null: model.ref's)."
    )
    text_heads: int | None = Field(
        default=None, ge=1, description="Built text tower: attention heads (null: model.ref's)."
    )
    projection_dim: int = Field(
        default=128, ge=1, description="Size of the shared embedding space (new heads only)."
    )
    logit_scale_max: float = Field(
        default=100.0,
        gt=1,
        description="Upper clamp of the learned inverse temperature, exp(logit_scale) (CLIP: 100).",
    )
    label_template: str = Field(
        default="a photo of a {label}",
        description="image_label data: the caption made from each label ({label} is replaced).",
    )
    frozen_towers: list[Literal["text", "image"]] = Field(
        default_factory=list,
        description="Towers that never train whatever the method (text: locked-text "
        "tuning, as LiT locks the image tower).",
    )

    @model_validator(mode="after")
    def _patches_fit(self) -> ClipSettings:
        if self.image_size % self.patch_size:
            raise ValueError(
                f"task.patch_size: {self.patch_size} does not divide task.image_size "
                f"{self.image_size}; pick sizes where it does (e.g. 32 and 4)"
            )
        if self.vision_width % self.vision_heads:
            raise ValueError(
                f"task.vision_heads: {self.vision_heads} does not divide task.vision_width "
                f"{self.vision_width}; pick a divisor"
            )
        built_text = (self.text_width, self.text_heads)
        if self.text_layers is None and any(v is not None for v in built_text):
            raise ValueError(
                "task.text_width/text_heads: they shape a text tower built from config; set "
                "task.text_layers too (or remove them to train model.ref's tower)"
            )
        if (self.text_width or 0) % (self.text_heads or 1):
            raise ValueError(
                f"task.text_heads: {self.text_heads} does not divide task.text_width "
                f"{self.text_width}; pick a divisor"
            )
        if "{label}" not in self.label_template:
            raise ValueError(
                f"task.label_template: {self.label_template!r} has no {{label}}; add it"
            )
        return self


class DiffusionSettings(TaskSettings):
    """Text-to-image diffusion: a UNet learns to remove noise, conditioned on captions."""

    formats = ("image_text", "image_label")
    class_labels = True
    name: Literal["diffusion"]
    max_length: int = Field(default=64, gt=0, description="Longest tokenized caption.")
    conditioning: Literal["text", "label"] = Field(
        default="text",
        description="text: cross-attention on the frozen text encoder's hidden states "
        "(model.ref's); label: a learned embedding per class label (image_label data).",
    )
    image_size: int = Field(
        default=16, ge=8, description="Side in pixels of a UNet built here (images are resized)."
    )
    image_channels: Literal[1, 3] = Field(
        default=3, description="A UNet built here: 1 trains on grey images, 3 on colour."
    )
    block_channels: list[int] = Field(
        default_factory=lambda: [32, 64, 64],
        min_length=2,
        description="A UNet built here: channels of each resolution level (each halves the "
        "image side); levels after the first use cross-attention.",
    )
    layers_per_block: int = Field(default=1, ge=1, description="A UNet built here: ResNet "
                                  "layers per level.")  # fmt: skip
    attention_head_dim: int = Field(default=8, ge=1, description="A UNet built here: "
                                    "channels per attention head.")  # fmt: skip
    prediction_type: Literal["epsilon", "v_prediction"] = Field(
        default="epsilon",
        description="What the UNet predicts: the added noise (DDPM) or the velocity (v).",
    )
    noise_schedule: Literal["linear", "scaled_linear", "squaredcos_cap_v2"] = Field(
        default="squaredcos_cap_v2",
        description="The betas of a UNet built here (a checkpoint keeps its scheduler's).",
    )
    train_timesteps: int = Field(default=1000, ge=10, description="Noise levels of a UNet "
                                 "built here.")  # fmt: skip
    condition_dropout: float = Field(
        default=0.1,
        ge=0,
        lt=1,
        description="Share of examples trained without their caption (or label), which "
        "classifier-free guidance needs at generation time.",
    )
    label_template: str = Field(
        default="a {label}",
        description="text conditioning on image_label data: the caption made from each label.",
    )

    @model_validator(mode="after")
    def _fits(self) -> DiffusionSettings:
        side = self.image_size
        if side % 2 ** (len(self.block_channels) - 1):
            raise ValueError(
                f"task.image_size: {side} cannot be halved {len(self.block_channels) - 1} "
                "times (one per level of task.block_channels after the first); use a "
                "multiple of " + str(2 ** (len(self.block_channels) - 1))
            )
        bad = [c for c in self.block_channels if c % self.attention_head_dim or c % 8]
        if bad:
            raise ValueError(
                f"task.block_channels: {bad} must be multiples of 8 (group norm) and of "
                f"task.attention_head_dim {self.attention_head_dim}"
            )
        if "{label}" not in self.label_template:
            raise ValueError(
                f"task.label_template: {self.label_template!r} has no {{label}}; add it"
            )
        return self


class TabularTaskSettings(TaskSettings):
    """What both tabular tasks take: class imbalance and the costs that set the threshold."""

    formats = ("tabular",)
    builds_model = True
    positive_weight: float | None = Field(
        default=None,
        gt=0,
        description="Weight of a positive row in the loss; null: negatives / positives of "
        "the training rows (balanced classes).",
    )
    missed_cost: float = Field(
        default=100.0, gt=0, description="Cost of a missed positive (a fraud let through)."
    )
    false_alarm_cost: float = Field(
        default=1.0, gt=0, description="Cost of a false alarm (a good transaction stopped)."
    )
    at_fpr: float = Field(
        default=0.001, gt=0, lt=1, description="Reports recall at this false-positive rate."
    )
    at_recall: float = Field(
        default=0.8, gt=0, lt=1, description="Reports precision at this recall."
    )


class TabularSettings(TabularTaskSettings):
    """Binary classification of table rows with an FT-Transformer."""

    name: Literal["tabular"]
    scaling: Literal["quantile", "standard"] = Field(
        default="quantile",
        description="Numeric preprocessing fitted on the training rows: quantile (ranks "
        "mapped to normal scores) or standard (mean and deviation).",
    )
    d_token: int = Field(default=32, gt=0, description="Width of each feature token.")
    layers: int = Field(default=2, gt=0, description="Transformer layers.")
    heads: int = Field(default=4, gt=0, description="Attention heads (must divide d_token).")
    ffn_factor: float = Field(
        default=2.0, gt=0, description="Feed-forward width as a multiple of d_token."
    )
    dropout: float = Field(
        default=0.1, ge=0, lt=1, description="Dropout in attention and feed-forward blocks."
    )
    loss: Literal["weighted", "focal"] = Field(
        default="weighted",
        description="weighted: cross-entropy with positive_weight; focal: focal loss "
        "(focal_gamma) that down-weights easy rows, also scaled by positive_weight.",
    )
    focal_gamma: float = Field(default=2.0, ge=0, description="Focal loss's focusing power.")

    @model_validator(mode="after")
    def _heads_divide(self) -> TabularSettings:
        if self.d_token % self.heads:
            raise ValueError(
                f"task.heads: {self.heads} does not divide task.d_token {self.d_token}; "
                "pick a divisor"
            )
        return self


class LightGBMSettings(TabularTaskSettings):
    """The gradient-boosted trees baseline (LightGBM) on the same table and columns."""

    name: Literal["lightgbm"]
    trees: int = Field(default=500, gt=0, description="Most boosting rounds.")
    learning_rate: float = Field(default=0.05, gt=0, description="Shrinkage per tree.")
    num_leaves: int = Field(default=31, gt=1, description="Leaves per tree.")
    min_child_samples: int = Field(default=20, gt=0, description="Fewest rows in a leaf.")
    feature_fraction: float = Field(
        default=0.8, gt=0, le=1, description="Share of features each tree sees."
    )
    early_stopping: int | None = Field(
        default=50,
        gt=0,
        description="Stop when validation AUPRC has not improved for this many rounds; "
        "without validation data, or null, every tree grows.",
    )
    threads: int | None = Field(
        default=None, gt=0, description="LightGBM threads; null: the cores torch uses."
    )


class SeriesTaskSettings(TaskSettings):
    """What the timeseries tasks share: they read sensor windows (``data.series``)."""

    formats = ("timeseries",)
    builds_model = True


class TimeseriesSettings(SeriesTaskSettings):
    """Remaining useful life and failure soon, from sensor windows, with a Transformer."""

    name: Literal["timeseries"]
    tokens: Literal["sensor", "time"] = Field(
        default="sensor",
        description="What a token is: each sensor's whole window (sensor, as iTransformer "
        "does: a linear layer reads each sensor's history, attention mixes the sensors), or "
        "each time step's readings (time).",
    )
    d_model: int = Field(default=32, gt=0, description="Width of each token.")
    layers: int = Field(default=2, gt=0, description="Transformer layers.")
    heads: int = Field(default=4, gt=0, description="Attention heads (must divide d_model).")
    ffn_factor: float = Field(
        default=2.0, gt=0, description="Feed-forward width as a multiple of d_model."
    )
    dropout: float = Field(default=0.1, ge=0, lt=1, description="Dropout in every block.")
    positions: Literal["learned", "sinusoidal"] = Field(
        default="learned",
        description="Time-step positions (tokens: time): learned embeddings or fixed sines. "
        "Sensor tokens always learn one embedding per sensor.",
    )
    patch: int = Field(
        default=1,
        gt=0,
        description="Consecutive readings per token (PatchTST, tokens: time only); must "
        "divide data.series.window. 1: one token per reading.",
    )
    pooling: Literal["cls", "mean"] = Field(
        default="cls",
        description="What the heads read: a learned [CLS] token's state, or the time steps' "
        "states averaged.",
    )
    jitter: float = Field(
        default=0.0,
        ge=0,
        description="Training only: Gaussian noise of this standard deviation (in "
        "standardised sensor units) added to every reading of a window, a fresh draw each "
        "step (jittering, Um et al. 2017); 0: none.",
    )
    failure_weight: float = Field(
        default=0.1,
        ge=0,
        description="Weight of the failure-within-horizon cross-entropy beside the RUL "
        "regression loss (squared error in units of data.series.rul_cap).",
    )

    @model_validator(mode="after")
    def _heads_divide(self) -> TimeseriesSettings:
        if self.d_model % self.heads:
            raise ValueError(f"task.heads: {self.heads} does not divide task.d_model "
                             f"{self.d_model}; pick a divisor")  # fmt: skip
        if self.tokens == "sensor" and (self.patch != 1 or self.positions != "learned"):
            raise ValueError("task.tokens: sensor tokens each read a sensor's whole window, so "
                             "time-step patches and positions do not apply; remove task.patch "
                             "and task.positions, or use tokens: time")  # fmt: skip
        return self


class SeriesRidgeSettings(SeriesTaskSettings):
    """The ridge-regression baseline: RUL from the flattened window."""

    name: Literal["timeseries-ridge"]
    alpha: float = Field(default=1.0, gt=0, description="L2 penalty.")


class SeriesLightGBMSettings(SeriesTaskSettings):
    """The LightGBM baseline: RUL from each sensor's window mean, slope and last value."""

    name: Literal["timeseries-lightgbm"]
    trees: int = Field(default=1000, gt=0, description="Most boosting rounds.")
    learning_rate: float = Field(default=0.03, gt=0, description="Shrinkage per tree.")
    num_leaves: int = Field(default=31, gt=1, description="Leaves per tree.")
    min_child_samples: int = Field(default=50, gt=0, description="Fewest rows in a leaf.")
    early_stopping: int | None = Field(
        default=100,
        gt=0,
        description="Stop when validation RMSE has not improved for this many rounds; "
        "without validation data, or null, every tree grows.",
    )
    threads: int | None = Field(
        default=None, gt=0, description="LightGBM threads; null: the cores torch uses."
    )


@dataclass(frozen=True)
class TaskEntry:
    """One registered task: its settings model and its code (a factory, or the import
    path ``module:attribute`` of one, imported on first use)."""

    name: str
    settings: type[TaskSettings]
    factory: Callable[[], Any] | str

    def build(self) -> Any:
        """A new instance of the task."""
        factory = self.factory
        if isinstance(factory, str):
            module, _, attribute = factory.partition(":")
            factory = getattr(importlib.import_module(module), attribute)
        return factory()


_BUILT_IN = (
    TaskEntry("sft", SftSettings, "lmforge.tasks.sft:SftTask"),
    TaskEntry("clm", ClmSettings, "lmforge.tasks.clm:ClmTask"),
    TaskEntry("dpo", DpoSettings, "lmforge.tasks.dpo:DpoTask"),
    TaskEntry("grpo", GrpoSettings, "lmforge.train.grpo:GrpoTask"),
    TaskEntry("mlm", MlmSettings, "lmforge.tasks.mlm:MlmTask"),
    TaskEntry("classify", ClassifySettings, "lmforge.tasks.classify:ClassifyTask"),
    TaskEntry("regress", RegressSettings, "lmforge.tasks.classify:RegressTask"),
    TaskEntry("distill", DistillSettings, "lmforge.tasks.distill:DistillTask"),
    TaskEntry("clip", ClipSettings, "lmforge.tasks.clip:ClipTask"),
    TaskEntry("diffusion", DiffusionSettings, "lmforge.tasks.diffusion:DiffusionTask"),
    TaskEntry("tabular", TabularSettings, "lmforge.tasks.tabular:TabularTask"),
    TaskEntry("lightgbm", LightGBMSettings, "lmforge.tasks.tabular:LightGBMTask"),
    TaskEntry("timeseries", TimeseriesSettings, "lmforge.tasks.timeseries:TimeseriesTask"),
    TaskEntry("timeseries-ridge", SeriesRidgeSettings, "lmforge.tasks.timeseries:RidgeTask"),
    TaskEntry(
        "timeseries-lightgbm", SeriesLightGBMSettings, "lmforge.tasks.timeseries:LightGBMSeriesTask"
    ),
)
_REGISTRY: dict[str, TaskEntry] = {entry.name: entry for entry in _BUILT_IN}
_plugins_loaded = False


def register_task(
    name: str, factory: Callable[[], Any] | str, settings: type[TaskSettings] | None = None
) -> None:
    """Make ``task.name: NAME`` in a run config build the task with ``factory()``.

    Args:
        name: the task's name in run configs.
        factory: builds the task (a class, usually), or its ``module:attribute`` path.
        settings: the task's settings, a ``TaskSettings`` subclass with ``name:
            Literal[NAME]``; by default ``factory.settings``, or only the common ones.

    Raises:
        LmforgeError: ``settings`` is not such a subclass.
    """
    settings = settings or getattr(factory, "settings", None)
    if settings is None:
        settings = _renamed(TaskSettings, name, factory)
    if not (isinstance(settings, type) and issubclass(settings, TaskSettings)):
        raise LmforgeError(
            f"register_task({name!r}): settings must be a subclass of "
            f"lmforge.config.tasks.TaskSettings, got {settings!r}"
        )
    annotation: Any = settings.model_fields["name"].annotation
    if get_origin(annotation) is not Literal or get_args(annotation) != (name,):
        # a task class registered again under a new name (a subclass of SftTask, say)
        settings = _renamed(settings, name, factory)
    _REGISTRY[name] = TaskEntry(name, settings, factory)


def task_entry(name: str) -> TaskEntry:
    """The registered task ``name`` (installed plugins are looked for first when it is not
    a built-in).

    Raises:
        LmforgeError: no task has that name; the message lists the registered ones.
    """
    if name not in _REGISTRY:
        load_plugins()
    if name not in _REGISTRY:
        raise unknown_name("task.name", "task", name, task_names())
    return _REGISTRY[name]


def task_names() -> tuple[str, ...]:
    """Every registered task's name, built-ins first, installed plugins included."""
    load_plugins()
    return tuple(_REGISTRY)


def task_entries() -> tuple[TaskEntry, ...]:
    load_plugins()
    return tuple(_REGISTRY.values())


def markdown_table() -> str:
    """The registered tasks (built-in ones and installed plugins') as the Markdown table
    docs/training.md holds (a test keeps the two the same: regenerate with ``python -c
    "from lmforge.config.tasks import markdown_table; print(markdown_table())"``)."""
    rows = ["| task | what it trains | data formats | packable | its own settings |",
            "|---|---|---|---|---|"]  # fmt: skip
    common = set(TaskSettings.model_fields)
    for entry in task_entries():
        fields = entry.settings.model_fields
        defaults = {key: field.get_default(call_default_factory=True)
                    for key, field in fields.items() if not field.is_required()}  # fmt: skip
        own = [f"`{key}` (required)" if fields[key].is_required() else
               f"`{key}`" + (f" ({defaults[key]!r})" if defaults[key] is not None else "")
               for key in fields if key not in common]  # fmt: skip
        summary = (entry.settings.__doc__ or "").strip().splitlines()[0]
        formats = ", ".join(entry.settings.formats) or "any"
        packable = "yes" if entry.settings.packable else "no"
        rows.append(f"| `{entry.name}` | {summary} | {formats} | {packable} | "
                    f"{', '.join(own) or '-'} |")  # fmt: skip
    return "\n".join(rows)


def load_plugins() -> None:
    """Register the tasks of installed packages' ``lmforge.tasks`` entry points (once per
    process; a built-in name is never replaced).

    Raises:
        LmforgeError: an entry point that does not load, naming it and its package.
    """
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    try:
        for name, factory in installed_plugins(ENTRY_POINT_GROUP, skip=_REGISTRY):
            register_task(name, factory)
    except LmforgeError:
        _plugins_loaded = False  # looked for again next time, once the package is fixed
        raise


def _renamed(settings: type[TaskSettings], name: str, factory: Any) -> type[TaskSettings]:
    """``settings`` with ``name`` fixed to ``Literal[name]``: the common settings alone for
    a task registered without its own (formats and packing then come from the task's
    class), or a task's settings under the new name it is registered as."""
    model: type[TaskSettings] = create_model(
        f"{name.title().replace('-', '').replace('_', '')}Settings",
        __base__=settings,
        __doc__=settings.__doc__ if settings is not TaskSettings else f"The task {name!r}.",
        name=(Literal[name], ...),  # type: ignore[arg-type]
    )
    if settings is TaskSettings:
        model.formats = tuple(getattr(factory, "formats", ()))
        model.packable = bool(getattr(factory, "packable", False))
    return model
