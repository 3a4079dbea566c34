"""The run config: one pydantic model per section, checked as a whole.

A YAML run config has one mapping per section (``model``, ``task``, ``data``, ``train``,
``output``). Adding a section is one field on ``RunConfig``: error messages, key
suggestions and the JSON schema all walk the models, so they pick it up unchanged.
Cross-field checks raise ``ValueError`` whose message names every field involved.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import Field, SerializeAsAny, create_model, field_validator, model_validator

from lmforge.config.section import Section
from lmforge.config.tasks import (
    DpoSettings,
    GrpoSettings,
    TaskSettings,
    task_entries,
    task_entry,
)
from lmforge.errors import LmforgeError

# Names users bring from Hugging Face Trainer, LLaMA-Factory and torchtune configs, mapped
# to ours. Only used to suggest the right key in an "unknown key" error, never accepted.
KEY_SYNONYMS: dict[str, str] = {
    "model_name_or_path": "ref",
    "model_name": "ref",
    "path": "ref",
    "torch_dtype": "dtype",
    "task": "name",
    "cutoff_len": "max_length",
    "max_seq_len": "max_length",
    "max_seq_length": "max_length",
    "train_file": "train",
    "dataset": "train",
    "validation_file": "validation",
    "eval_file": "validation",
    "val_size": "val_ratio",
    "num_train_epochs": "epochs",
    "num_epochs": "epochs",
    "learning_rate": "lr",
    "per_device_train_batch_size": "batch_size",
    "gradient_accumulation_steps": "grad_accum",
    "lr_scheduler_type": "scheduler",
    "lr_scheduler": "scheduler",
    "mixed_precision": "precision",
    "logging_steps": "log_every",
    "eval_steps": "every",
    "eval_every": "every",
    "lora_rank": "lora_r",
    "lora_target": "target_modules",
    "finetuning_type": "name",
    "save_total_limit": "keep_checkpoints",
    "save_steps": "save_every",
    "output_dir": "dir",
    "experiment_name": "experiment",
}

# A registered model name must survive inside ``registry:NAME@ALIAS`` / ``NAME/VERSION``.
_REGISTRY_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"


class ModelConfig(Section):
    """Which model to start from."""

    ref: str | None = Field(
        default=None,
        min_length=1,
        description="Model reference resolved by lmforge.hub: a zoo name "
        "(smollm2-135m-instruct, all-minilm-l6-v2), a local Hugging Face or PEFT adapter "
        "directory, a .gguf file, registry:NAME@ALIAS, registry:NAME/VERSION or run:RUN_ID. "
        "Only tasks that build their model from their settings (tabular) may leave it out.",
    )
    from_scratch: bool = Field(
        default=False,
        description="Start from random weights with the model's architecture instead of its "
        "trained weights (a baseline that measures what pretraining is worth).",
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        default="auto",
        description="Dtype the weights are loaded in; auto keeps the checkpoint's own dtype.",
    )
    init_from: str | None = Field(
        default=None,
        min_length=1,
        description="Start from the trained weights of an earlier run of this model and "
        "method: its model folder or run:RUN_ID (a LoRA adapter with its head, or the whole "
        "model). Federated rounds start each site from the global model this way.",
    )


class TabularColumns(Section):
    """Which columns of a table (CSV or Parquet) a tabular task reads, and as what."""

    target: str = Field(description="The column to predict (two classes).")
    numeric: list[str] | None = Field(
        default=None,
        description="Numeric feature columns; null takes every column not named elsewhere "
        "(each must hold numbers).",
    )
    categorical: list[str] = Field(
        default_factory=list, description="Categorical feature columns (strings or codes)."
    )
    time: str | None = Field(
        default=None,
        description="A time column: the validation split then holds the latest rows "
        "(data.split auto); it is not a feature.",
    )
    weight: str | None = Field(
        default=None, description="A per-row weight column for the loss; not a feature."
    )
    exclude: list[str] = Field(
        default_factory=list,
        description="Columns to ignore (ids, leakage) when numeric is null.",
    )


class SeriesColumns(Section):
    """Sensor time series for the timeseries tasks: where the readings are, which columns
    hold what, and how each entity's history is cut into windows."""

    format: Literal["cmapss", "long"] = Field(
        default="cmapss",
        description="cmapss: NASA's C-MAPSS files (train_/test_/RUL_SUBSET.txt) in the folder "
        "data.train names; long: a CSV or Parquet table with one row per entity and time.",
    )
    subset: str = Field(default="FD001", description="cmapss only: which subset's files to read.")
    entity: str = Field(default="unit", description="long only: the entity (machine) id column.")
    time: str = Field(default="cycle", description="long only: the time (cycle) column.")
    features: list[str] | None = Field(
        default=None,
        description="long only: sensor columns; null takes every column not named elsewhere.",
    )
    conditions: list[str] = Field(
        default_factory=list,
        description="long only: operating-setting columns that name a row's operating "
        "condition (C-MAPSS files: their three settings); not features.",
    )
    target: str | None = Field(
        default=None,
        description="long only: a remaining-useful-life column; null: each row's time to its "
        "entity's last row (every entity run to failure).",
    )
    window: int = Field(default=30, gt=0, description="Readings per window (the model's input).")
    stride: int = Field(default=1, gt=0, description="Training windows start every N readings.")
    horizon: int = Field(
        default=30, gt=0, description="The failure head predicts failure within this many cycles."
    )
    rul_cap: int = Field(
        default=125,
        gt=0,
        description="Remaining useful life is capped here (piecewise-linear target) for "
        "training and scoring, as the C-MAPSS literature does.",
    )
    normalize: Literal["condition", "global"] = Field(
        default="global",
        description="Standardise each sensor per operating condition (multi-condition data "
        "such as FD002) or over all training rows.",
    )
    constant_values: int = Field(
        default=2,
        ge=1,
        description="A sensor with at most this many distinct values within every condition "
        "of the training rows is dropped as constant.",
    )

    @model_validator(mode="after")
    def _fits_format(self) -> SeriesColumns:
        if self.format == "cmapss":
            given = [k for k in ("features", "target") if getattr(self, k) is not None]
            given += ["conditions"] if self.conditions else []
            if given:
                raise ValueError(f"data.series.{given[0]}: C-MAPSS files have fixed columns; "
                                 "remove it (or use format long)")  # fmt: skip
        if self.format == "long" and self.normalize == "condition" and not self.conditions:
            raise ValueError(
                "data.series.normalize: 'condition' needs data.series.conditions, the "
                "operating-setting columns; name them or use 'global'"
            )
        return self


class DataConfig(Section):
    """Where the examples come from and how to read them."""

    train: Path | None = Field(
        default=None,
        description="Training data file (.jsonl, .json, .csv, .parquet), or for the image "
        "formats a folder of images. A relative path is relative to the config file. "
        "Unset only when train.continual lists each stage's data.",
    )
    validation: Path | None = Field(
        default=None, description="Validation data file; leave unset to split data.train instead."
    )
    val_ratio: float = Field(
        default=0.0,
        ge=0,
        lt=1,
        description="Fraction of data.train held out for validation when data.validation "
        "is unset; 0 means no validation.",
    )
    format: Literal[
        "auto",
        "messages",
        "alpaca",
        "text",
        "labeled",
        "image_text",
        "image_label",
        "tabular",
        "timeseries",
        "preference",
        "prompt",
    ] = Field(
        default="auto",
        description="Record layout: messages (chat turns), alpaca (instruction/input/output), "
        "text (plain text), labeled (text + label), image_text (image path + caption), "
        "image_label (image path + label), tabular (a table's columns, see data.columns), "
        "timeseries (sensor series, see data.series), preference (prompt or messages, then "
        "a chosen and a rejected answer), prompt (a prompt to complete, the other columns kept "
        "for the rewards); "
        "auto detects it from the columns.",
    )
    columns: TabularColumns | None = Field(
        default=None, description="tabular only: the target, feature, time and weight columns."
    )
    series: SeriesColumns | None = Field(
        default=None,
        description="timeseries only: the files, columns and windows of sensor series.",
    )
    split: Literal["auto", "random", "time"] = Field(
        default="auto",
        description="How data.val_ratio holds out validation rows: random, or time (the latest "
        "rows by data.columns.time); auto is time when a time column is set.",
    )
    fields: dict[str, str] = Field(
        default_factory=dict,
        description="Rename columns to the names the format expects, e.g. {text: body}.",
    )
    max_samples: int | None = Field(
        default=None, gt=0, description="Use at most this many training examples (for quick runs)."
    )
    packing: bool = Field(
        default=False, description="sft/clm only: concatenate examples into max_length blocks."
    )
    labels: list[str] | None = Field(
        default=None,
        description="classify only: the label set, in order; null collects the labels found "
        "in data.train. Rows with another label are bad rows.",
    )
    overlong: Literal["truncate", "drop"] = Field(
        default="truncate",
        description="What to do with an example longer than task.max_length: truncate it or "
        "drop it (either is counted in the run's metrics).",
    )
    seed: int = Field(default=42, description="Seed for shuffling and the validation split.")
    on_error: Literal["fail", "skip"] = Field(
        default="fail",
        description="What to do with a malformed record: fail names it and stops; skip "
        "drops it and counts it.",
    )

    @model_validator(mode="after")
    def _one_validation_source(self) -> DataConfig:
        if self.validation is not None and self.val_ratio > 0:
            raise ValueError(
                "data.validation and data.val_ratio are both set; keep one "
                "(a validation file, or a fraction of data.train to hold out)"
            )
        return self

    @property
    def train_path(self) -> Path:
        """``train``, which only a continual sequence's config leaves unset (its stages
        each give theirs).

        Raises:
            LmforgeError: it is unset.
        """
        if self.train is None:
            raise LmforgeError("data.train: required (the training data file)")
        return self.train

    @property
    def has_validation(self) -> bool:
        """Whether this data section yields validation examples."""
        return self.validation is not None or self.val_ratio > 0


class ContinualStage(Section):
    """One data set of a continual sequence: trained after the stages before it."""

    name: str = Field(description="What the stage is called in runs and the accuracy matrix.")
    train: Path = Field(description="Its training data (read as data.train would be).")
    validation: Path | None = Field(default=None, description="Its validation data.")
    test: Path | None = Field(
        default=None,
        description="What `lmforge eval continual` scores every stage's model on for this "
        "stage; null: its validation data.",
    )
    labels: list[str] | None = Field(
        default=None,
        description="Keep only the records with these labels (of every file of the stage): "
        "how one labeled file becomes class-incremental stages. null: every record.",
    )


class ContinualConfig(Section):
    """Training on a sequence of data sets, each stage starting from the last one's model."""

    stages: list[ContinualStage] = Field(min_length=2, description="The data sets, in order.")
    replay: float = Field(
        default=0.0,
        ge=0,
        lt=1,
        description="The share of each stage's training examples drawn from the replay "
        "buffer (a stored sample of the earlier stages' data), mixed in before shuffling. "
        "0: plain sequential fine-tuning.",
    )
    buffer_size: int = Field(
        default=100, ge=0, description="Records of each stage kept in the replay buffer."
    )
    ewc: float = Field(
        default=0.0,
        ge=0,
        description="Elastic weight consolidation's strength lambda: each stage's loss gains "
        "lambda/2 * sum F (w - w_prev)^2, F the diagonal Fisher information of the stages "
        "before (summed), w_prev where the stage started. 0: off.",
    )
    fisher_samples: int = Field(
        default=200, gt=0, description="Training examples the Fisher information is averaged over."
    )
    eval_task: str | None = Field(
        default=None,
        description="The evaluation task of `lmforge eval continual` (lmforge.evaluate.tasks); "
        "null: classification for task classify.",
    )
    metric: str = Field(
        default="accuracy",
        description="The eval task's metric in the accuracy matrix (higher is better).",
    )


class TrainConfig(Section):
    """The optimization loop. Steps count optimizer steps (after gradient accumulation)."""

    epochs: float = Field(default=1.0, gt=0, description="Passes over the training data.")
    max_steps: int | None = Field(
        default=None,
        gt=0,
        description="Train for exactly this many optimizer steps (repeating the data as "
        "needed); overrides train.epochs.",
    )
    batch_size: int = Field(default=8, gt=0, description="Examples per forward pass (per process).")
    grad_accum: int = Field(default=1, gt=0, description="Forward passes per optimizer step.")
    lr: float = Field(default=5e-5, gt=0, description="Peak learning rate.")
    optimizer: Literal["adamw", "sgd"] = Field(
        default="adamw",
        description="adamw, or sgd with momentum (steadier under privacy's noise: AdamW "
        "scales every weight's step to about lr, so weights whose gradient is mostly noise "
        "wander; SGD moves them by the noise's small size).",
    )
    momentum: float | None = Field(
        default=None, ge=0, lt=1, description="sgd only: momentum; null: 0.9."
    )
    weight_decay: float = Field(
        default=0.0, ge=0, description="Weight decay (decoupled for adamw)."
    )
    warmup_ratio: float = Field(
        default=0.0, ge=0, lt=1, description="Fraction of steps spent warming the learning rate up."
    )
    scheduler: Literal["constant", "linear", "cosine"] = Field(
        default="linear", description="Learning-rate decay after warmup."
    )
    max_grad_norm: float | None = Field(
        default=1.0, gt=0, description="Clip gradients to this norm; null disables clipping."
    )
    continual: ContinualConfig | None = Field(
        default=None,
        description="Train on a sequence of data sets (stages) instead of data.train: each "
        "stage is its own run, started from the model the stage before saved.",
    )
    proximal_mu: float = Field(
        default=0.0,
        ge=0,
        description="Pull the trained weights toward where they started: the loss gains "
        "mu/2 * ||w - w_start||^2 (FedProx's proximal term). 0: off.",
    )
    ema_decay: float | None = Field(
        default=None,
        gt=0,
        lt=1,
        description="Keep an exponential moving average of the trained weights with this "
        "decay (e.g. 0.999; warmed up as diffusers' EMAModel does); evaluation and the saved "
        "model use the average. null: off.",
    )
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        default="fp32", description="Compute precision (bf16/fp16 use autocast mixed precision)."
    )
    seed: int = Field(default=42, description="Seed for weight init, dropout and data order.")
    log_every: int = Field(default=10, gt=0, description="Log metrics every this many steps.")
    save_every: int | None = Field(
        default=None,
        gt=0,
        description="Save a checkpoint every this many steps; null saves only at the end.",
    )
    keep_checkpoints: int = Field(
        default=2, ge=1, description="Keep only the newest this many checkpoints."
    )
    group_by_length: bool = Field(
        default=True,
        description="Batch examples of similar length together (less padding), in a "
        "seeded random order.",
    )
    gradient_checkpointing: bool = Field(
        default=False, description="Recompute activations in backward to save memory."
    )
    strategy: Literal["auto", "ddp", "fsdp", "deepspeed"] = Field(
        default="auto",
        description="How several processes (--nproc) share the work: ddp replicates the "
        "model, fsdp shards it, deepspeed uses ZeRO (GPU); auto is ddp.",
    )
    deepspeed_config: Path | None = Field(
        default=None, description="deepspeed only: a DeepSpeed JSON config file."
    )

    @model_validator(mode="after")
    def _momentum_needs_sgd(self) -> TrainConfig:
        if self.momentum is not None and self.optimizer != "sgd":
            raise ValueError("train.momentum: only optimizer sgd uses it (AdamW keeps its "
                             "own running averages); set train.optimizer: sgd or remove "
                             "momentum")  # fmt: skip
        return self


class MethodConfig(Section):
    """Which weights train: all of them, low-rank adapters, or only the top layers."""

    name: Literal["full", "lora", "qlora", "freeze"] = Field(
        default="full",
        description="full: every weight; lora: low-rank adapters (peft); qlora: lora on a "
        "4-bit base (CUDA only); freeze: only the top layers and the head.",
    )
    lora_r: int = Field(default=8, gt=0, description="lora/qlora: adapter rank.")
    lora_alpha: int = Field(default=16, gt=0, description="lora/qlora: scaling numerator.")
    lora_dropout: float = Field(default=0.05, ge=0, lt=1, description="lora/qlora: dropout.")
    target_modules: list[str] | Literal["all-linear"] | None = Field(
        default=None,
        description="lora/qlora: module names to adapt, or all-linear; null picks a "
        "per-architecture default (attention projections).",
    )
    trainable_layers: int = Field(
        default=2,
        ge=0,
        description="freeze: how many of the top transformer layers train (0: only the final "
        "norm, pooler and task head, a linear probe on the frozen encoder).",
    )
    lora_layers: int | None = Field(
        default=None,
        gt=0,
        description="lora: adapt only the top N transformer layers (null: all). The backward "
        "pass then stops below them, so a step costs less.",
    )
    base_precision: Literal["fp32", "int8"] = Field(
        default="fp32",
        description="lora: precision of the frozen base's linear layers. int8 quantizes "
        "their weights per output channel once and runs their forward and input gradient "
        "as INT8 matmuls (CPUs with VNNI; elsewhere a warning and fp32); adapters, norms "
        "and the loss stay fp32, and the saved adapter loads on the fp32 base.",
    )


class PrivacyConfig(Section):
    """Differentially private training (DP-SGD through Opacus; docs/privacy.md): each
    example's gradient clipped, Gaussian noise added, the budget spent accounted."""

    target_epsilon: float | None = Field(
        default=None,
        gt=0,
        description="The budget to spend over the whole run (epsilon at privacy.delta); the "
        "noise is chosen to spend it. Give this or noise_multiplier.",
    )
    noise_multiplier: float | None = Field(
        default=None,
        gt=0,
        description="The noise's standard deviation over max_grad_norm; the budget spent "
        "follows from it. Give this or target_epsilon.",
    )
    delta: float | None = Field(
        default=None,
        gt=0,
        lt=1,
        description="delta of (epsilon, delta)-differential privacy. null: 1/N rounded down "
        "to a power of ten (N training examples).",
    )
    max_grad_norm: float = Field(
        default=1.0, gt=0, description="Each example's gradient is clipped to this L2 norm."
    )
    accountant: Literal["prv", "rdp"] = Field(
        default="prv",
        description="How the budget is counted: prv (privacy loss random variables, the "
        "tighter) or rdp (Renyi DP).",
    )
    poisson: bool = Field(
        default=True,
        description="Draw each batch by Poisson sampling, as the accounting assumes. false: "
        "the shuffled fixed-size batches of a run without privacy; the budget reported is "
        "then the usual approximation, not a guarantee.",
    )

    @model_validator(mode="after")
    def _one_way_to_set_the_noise(self) -> PrivacyConfig:
        if (self.target_epsilon is None) == (self.noise_multiplier is None):
            raise ValueError("privacy: give target_epsilon (the budget; the noise follows) "
                             "or noise_multiplier (the noise; the budget follows), "
                             "not both")  # fmt: skip
        if self.accountant == "prv" and (self.noise_multiplier or 1.0) < PRV_MIN_NOISE:
            # measured: at 0.1 Opacus' PRV accountant returns inf after 12 s, and at 1e-6 it
            # asks numpy for petabytes; epsilon there is past 100, which protects nothing
            raise ValueError(f"privacy.noise_multiplier: below {PRV_MIN_NOISE} the prv "
                             "accountant cannot count the budget (it is past 100 there); "
                             "use accountant: rdp, or more noise")  # fmt: skip
        return self


PRV_MIN_NOISE = 0.2  # the least noise the prv accountant counts (epsilon ~160 at 75 steps)

CANARY_TASKS = ("sft", "clm")  # the tasks whose data can carry audit canaries


class AuditConfig(Section):
    """Canaries for the memorisation audit (the secret sharer: Carlini et al., 2019;
    docs/privacy.md): random secrets put into the training data a set number of times,
    whose exposure ``lmforge audit memorization`` measures after training."""

    canaries: int = Field(gt=0, le=1000, description="Random secrets inserted into training.")
    repeats: int = Field(default=10, gt=0, description="How many times each canary is inserted.")
    references: int | None = Field(
        default=None,
        gt=0,
        le=1000,
        description="Random secrets of the same kind never inserted: the baseline the "
        "canaries' exposure is read against. null: as many as canaries.",
    )
    digits: int = Field(default=6, ge=3, le=12, description="Digits in each secret.")
    prefix: str = Field(
        default="my card PIN is", min_length=1, description="The words before a secret."
    )
    question: str = Field(
        default="What is my card PIN?",
        min_length=1,
        description="The user's turn before the secret, for chat (messages) data.",
    )
    seed: int = Field(default=0, description="Draws the secrets.")

    @model_validator(mode="after")
    def _room_for_the_secrets(self) -> AuditConfig:
        drawn = self.canaries + (self.references or self.canaries)
        if drawn > 10**self.digits // 10:
            raise ValueError(f"audit: {drawn} canaries and references among {10**self.digits} "
                             f"possible secrets of {self.digits} digits leave too little to "
                             "rank them against; raise audit.digits or draw fewer")  # fmt: skip
        return self


class EvalConfig(Section):
    """When and how much to evaluate on the validation data."""

    every: int | None = Field(
        default=None,
        gt=0,
        description="Evaluate every this many steps; null evaluates at the end of training "
        "when there is validation data.",
    )
    batch_size: int | None = Field(
        default=None, gt=0, description="Evaluation batch size; null uses train.batch_size."
    )
    max_samples: int | None = Field(
        default=None, gt=0, description="Evaluate on at most this many validation examples."
    )
    before_training: bool = Field(
        default=False, description="Also evaluate once before the first step (a baseline)."
    )


class OutputConfig(Section):
    """Where results go and how the run is tracked."""

    dir: Path | None = Field(
        default=None,
        description="Run output directory; null means $LMFORGE_HOME/runs/<run-id>. A "
        "relative path is relative to the config file.",
    )
    experiment: str = Field(
        default="lmforge", min_length=1, description="Tracking experiment the run is logged under."
    )
    register_as: str | None = Field(
        default=None,
        pattern=_REGISTRY_NAME,
        description="Register the trained model under this name in the model registry "
        "(letters, digits, '.', '_', '-').",
    )


class RunConfig(Section):
    """A whole training run: model, task, data, method, train, eval, output."""

    model: ModelConfig = Field(default_factory=ModelConfig)
    # the registered task's own settings model, chosen by task.name (config/tasks.py)
    task: SerializeAsAny[TaskSettings]
    data: DataConfig
    method: MethodConfig = Field(default_factory=MethodConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    privacy: PrivacyConfig | None = Field(
        default=None, description="Differentially private training; null: off."
    )
    audit: AuditConfig | None = Field(
        default=None, description="Canaries for the memorisation audit; null: none inserted."
    )

    @field_validator("task", mode="before")
    @classmethod
    def _settings_of_the_named_task(cls, value: Any) -> Any:
        """Validate ``task`` with the settings model of the task it names."""
        if isinstance(value, TaskSettings) or not isinstance(value, dict):
            return value
        name = value.get("name")
        if not isinstance(name, str):
            return value  # "task.name: required key is missing" or a type error follows
        try:
            entry = task_entry(name)
        except LmforgeError as error:
            raise ValueError(str(error)) from None
        return entry.settings.model_validate(value)

    @model_validator(mode="after")
    def _sections_agree(self) -> RunConfig:
        problems: list[str] = []
        task = self.task.name
        allowed = type(self.task).formats
        if self.data.format != "auto" and allowed and self.data.format not in allowed:
            problems.append(
                f"data.format: {self.data.format!r} cannot feed task {task!r}; "
                f"use {', '.join(repr(f) for f in allowed)} or 'auto'"
            )
        if self.data.packing and not type(self.task).packable:
            packable = [e.name for e in task_entries() if e.settings.packable]
            problems.append(
                f"data.packing: only tasks {', '.join(packable)} can pack examples, "
                f"not {task!r}; remove it"
            )
        if self.train.continual is not None:
            problems += self._continual_problems(self.train.continual)
        elif self.data.train is None:
            problems.append("data.train: required (the training data file); only "
                            "train.continual's stages give their own")  # fmt: skip
        stages_validate = self.train.continual is not None and all(
            stage.validation is not None for stage in self.train.continual.stages
        )
        if self.eval.every is not None and not (self.data.has_validation or stages_validate):
            problems.append(
                "eval.every: set, but there is no validation data; "
                "set data.validation or data.val_ratio"
            )
        if self.model.ref is None and not type(self.task).builds_model:
            names = [repr(e.name) for e in task_entries() if e.settings.builds_model]
            builders = ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0]
            problems.append(
                f"model.ref: required for task {task!r} (only {builders} build their model "
                "from the task settings); set it to a zoo name, a model folder or run:RUN_ID"
            )
        tabular_format = self.data.format == "tabular" or "tabular" in allowed
        if tabular_format and self.data.columns is None:
            problems.append(
                "data.columns: tabular data needs its columns named, at least "
                "{target: COLUMN}; add data.columns"
            )
        if tabular_format:
            unused = {"data.fields": bool(self.data.fields) and "columns are named in "
                      "data.columns", "data.on_error": self.data.on_error == "skip" and
                      "a table's bad values are errors that name the column (fix the file)",
                      "data.split": self.data.split != "auto" and self.data.validation is not None
                      and "data.validation is given, so nothing is split off"}  # fmt: skip
            problems += [f"{key}: not used by tabular data ({why}); remove it"
                         for key, why in unused.items() if why]  # fmt: skip
        if self.data.columns is not None and not tabular_format:
            problems.append(f"data.columns: only tabular data has columns; task {task!r} "
                            "reads other formats, so remove it")  # fmt: skip
        series_format = self.data.format == "timeseries" or "timeseries" in allowed
        if series_format and self.data.series is None:
            problems.append("data.series: sensor series need their layout, at least "
                            "{format: cmapss, subset: FD001}; add data.series")  # fmt: skip
        if self.data.series is not None and not series_format:
            problems.append(f"data.series: only timeseries data has series; task {task!r} "
                            "reads other formats, so remove it")  # fmt: skip
        if self.data.split == "time" and (
            self.data.columns is None or self.data.columns.time is None
        ):
            problems.append("data.split: 'time' needs data.columns.time, the column to order by")
        if self.data.labels is not None and not type(self.task).class_labels:
            takers = " and ".join(repr(e.name) for e in task_entries() if e.settings.class_labels)
            problems.append(f"data.labels: only task {takers} has labels, not {task!r}")
        if self.train.ema_decay is not None and self.train.strategy == "fsdp":
            problems.append(
                "train.ema_decay: the weight average needs whole weights, and strategy 'fsdp' "
                "shards them; use strategy 'ddp' or remove ema_decay"
            )
        if self.train.strategy == "deepspeed" and self.train.deepspeed_config is None:
            problems.append(
                "train.deepspeed_config: strategy 'deepspeed' needs a DeepSpeed JSON config "
                "file; set it or use strategy 'fsdp'"
            )
        if self.method.base_precision == "int8":
            if self.method.name != "lora":
                problems.append(
                    f"method.base_precision: 'int8' quantizes the frozen base of LoRA "
                    f"training, and method {self.method.name!r} trains base weights; use "
                    "method.name 'lora' or base_precision 'fp32'"
                )
            if self.train.precision != "fp32" or self.model.dtype not in {"auto", "float32"}:
                problems.append(
                    "method.base_precision: 'int8' computes around fp32 activations; set "
                    "train.precision 'fp32' and model.dtype 'float32' (or base_precision 'fp32')"
                )
        mismatch = {("bfloat16", "fp16"), ("float16", "bf16")}
        if (self.model.dtype, self.train.precision) in mismatch:
            problems.append(
                f"train.precision: {self.train.precision!r} conflicts with model.dtype "
                f"{self.model.dtype!r}; use matching ones or model.dtype 'float32'"
            )
        if self.train.proximal_mu > 0 and self.train.strategy in {"fsdp", "deepspeed"}:
            problems.append(f"train.proximal_mu: not with {self.train.strategy} (the pull "
                            "needs whole weights); use strategy auto or ddp")  # fmt: skip
        if isinstance(self.task, DpoSettings) and self.task.reference == "adapter_off":
            if self.method.name not in {"lora", "qlora"}:
                problems.append(f"task.reference: adapter_off scores the reference with the "
                                f"LoRA adapter disabled, and method {self.method.name!r} has "
                                "none; use precomputed (or null)")  # fmt: skip
            if self.model.init_from is not None:
                problems.append("task.reference: adapter_off would score the model without "
                                "the weights model.init_from loads, not the model training "
                                "starts from; use precomputed (or null)")  # fmt: skip
        if isinstance(self.task, GrpoSettings):
            problems += self._grpo_problems(self.task)
        if self.privacy is not None:
            problems += self._private_problems()
        if self.audit is not None and task not in CANARY_TASKS:
            problems.append(f"audit: canaries are text a language model learns to produce, "
                            f"for tasks {', '.join(CANARY_TASKS)}, not {task!r}; remove "
                            "audit")  # fmt: skip
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def _continual_problems(self, continual: ContinualConfig) -> list[str]:
        """What a continual sequence cannot do or lacks."""
        task = self.task.name
        refused = {
            "data.train": self.data.train is not None and "each stage gives its training "
            "data in train.continual.stages[i].train",
            "data.validation": self.data.validation is not None and "each stage gives its "
            "own in train.continual.stages[i].validation",
            "data.format": self.data.format in {"tabular", "timeseries"} and "tables and "
            "sensor series are not built for continual sequences",
            "train.proximal_mu": self.train.proximal_mu > 0 and continual.ewc > 0 and "ewc "
            "already pulls each stage toward where it started, by weight",
            "privacy": self.privacy is not None and "the privacy budget would have to be "
            "accounted across stages, which is not built",
        }  # fmt: skip
        problems = [f"{key}: not with train.continual ({why}); remove it"
                    for key, why in refused.items() if why]  # fmt: skip
        if continual.eval_task is None and task != "classify":
            problems.append(f"train.continual.eval_task: set the evaluation task that scores "
                            f"each stage (for task {task!r}: qa, perplexity, code...)")  # fmt: skip
        if type(self.task).class_labels and self.data.labels is None:
            problems.append("data.labels: list the labels of every stage, so each stage's "
                            "model has the same classes in the same order")  # fmt: skip
        names = [stage.name for stage in continual.stages]
        if len(set(names)) != len(names):
            problems.append(f"train.continual.stages: names must differ, got {names}")
        if not type(self.task).class_labels and any(s.labels for s in continual.stages):
            problems.append(f"train.continual.stages[].labels: task {task!r} has no class "
                            "labels to keep records by; remove it")  # fmt: skip
        return problems

    def _grpo_problems(self, task: GrpoSettings) -> list[str]:
        """What a grpo run cannot do: its KL reference is the LoRA adapter switched off,
        and it samples with the whole model."""
        problems = []
        if task.beta > 0 and self.method.name not in {"lora", "qlora"}:
            problems.append(f"task.beta: the KL penalty's reference is the model with its LoRA "
                            f"adapter switched off, and method {self.method.name!r} has none; "
                            "use method lora, or beta 0")  # fmt: skip
        if task.beta > 0 and self.model.init_from is not None:
            problems.append("task.beta: the KL reference (the adapter switched off) would be "
                            "the base model, not the one model.init_from loads; set beta 0 or "
                            "start a fresh adapter")  # fmt: skip
        if self.train.strategy in {"fsdp", "deepspeed"}:
            problems.append(f"train.strategy: grpo samples with the whole model, which "
                            f"{self.train.strategy} shards; use strategy auto")  # fmt: skip
        return problems

    def _private_problems(self) -> list[str]:
        """What private training cannot do yet, each with the way out."""
        unsupported = {
            "data.packing": self.data.packing and "a packed sequence mixes examples, and "
            "privacy protects each example; remove it",
            "train.grad_accum": self.train.grad_accum > 1 and "a private step draws one "
            "Poisson batch; raise train.batch_size instead",
            "train.strategy": self.train.strategy in {"fsdp", "deepspeed"} and "per-example "
            "gradients need whole layers; use auto, in one process",
            "train.precision": self.train.precision != "fp32" and "per-example gradients are "
            "checked in fp32 only; use fp32",
            "train.proximal_mu": self.train.proximal_mu > 0 and "the proximal pull is not "
            "noised with the gradients; use FedAvg (proximal_mu 0) with privacy",
            "task.name": isinstance(self.task, DpoSettings | GrpoSettings) and f"a "
            f"{self.task.name} example's loss joins several answers, and DP-SGD clips each "
            f"sequence's gradient alone; train {self.task.name} without privacy",
        }  # fmt: skip
        return [f"{key}: not with privacy ({why})" for key, why in unsupported.items() if why]


def json_schema() -> dict[str, Any]:
    """Return the JSON schema of ``RunConfig`` (every section, field, default and bound),
    ``task`` as one settings model per registered task, chosen by ``name``."""
    settings = tuple(entry.settings for entry in task_entries())
    union = Annotated[Union[settings], Field(discriminator="name")]  # type: ignore[valid-type]  # noqa: UP007
    with_tasks = create_model("RunConfig", __base__=RunConfig, task=(union, ...))
    return with_tasks.model_json_schema()
