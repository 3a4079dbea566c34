"""The evaluation-task registry: each task's name, the records it reads, how it asks the
model and how it scores.

One ``EvalTask`` per task is the single source of its name, description, metrics, record
fields, whether a knowledge base can ground it, and its code. ``lmforge eval`` dispatches
through it, and the CLI's help, the pipeline's eval step, the error messages and the task
table in docs/evaluate.md are derived from it.

A task either asks a chat model one question per record (``question`` and ``score``: the
runner generates the answers greedily, with any system prompt, template or knowledge base
in the prompt) or runs the model itself (``predict``: perplexity, classifiers). A user's
task registers with ``register_eval_task(EvalTask(...))``; an installed package adds one
through the ``lmforge.eval_tasks`` entry point group::

    [project.entry-points."lmforge.eval_tasks"]
    my-task = "my_package.evals:MY_TASK"   # an EvalTask (registered under the entry's name)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from lmforge.config.plugins import installed_plugins
from lmforge.config.section import unknown_name
from lmforge.errors import LmforgeError
from lmforge.evaluate import agent, image_generation, image_tasks, tabular, timeseries
from lmforge.evaluate import builtin_tasks as builtin
from lmforge.progress import ProgressFn
from lmforge.stats import TABLE_METRICS, retrieval_metric_names

ENTRY_POINT_GROUP = "lmforge.eval_tasks"

Record = dict[str, Any]  # one line of the data file; also one row of the per-example table
Messages = list[dict[str, str]]


@dataclass(frozen=True)
class EvalTask:
    """One evaluation task. A record must have ``fields`` (non-empty strings), or
    ``messages`` where the task takes them; the per-example rows its code returns hold one
    column per metric (see ``lmforge.evaluate.metrics.aggregate``) and an ``id``.

    Raises:
        LmforgeError: a task that does not say how it is scored (the message names the
            attribute and the fix).
    """

    name: str
    description: str  # one line: what it measures
    metrics: tuple[str, ...]
    fields: tuple[str, ...] = ()  # non-empty string fields every record needs
    optional_fields: tuple[str, ...] = ()  # read when a record has them (qa's keywords)
    # the record's ``label``: "class" (text; a number is read as text) or "number"
    label: Literal["class", "number"] | None = None
    messages: bool = False  # a record may give a chat instead (its last turn the reference)
    grounded: bool = False  # a knowledge base's passages may go into its prompts (--kb)
    wilson: tuple[str, ...] = ()  # 0/1 metrics given a Wilson interval, not a bootstrap one
    # metric -> per-example columns it needs; reported only when the first example has them
    metric_needs: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # the user message asking a record's question (a task that asks the model)
    question: Callable[[Record], str] | None = None
    # per-example rows from (records, the prompts asked, the model's answers)
    score: Callable[[list[Record], list[Messages], list[str]], list[Record]] | None = None
    # per-example rows from (model reference, records, progress): the task runs the model
    predict: Callable[[str, list[Record], ProgressFn | None], list[Record]] | None = None
    # the task's own rule for a record, after its fields are found: why it cannot be scored
    check: Callable[[Record], str | None] | None = None
    # fields holding a file path, relative to the data file (made absolute when read)
    path_fields: tuple[str, ...] = ()
    # predict takes ``templates=``: the prompts made from each label (zero-shot)
    label_templates: bool = False
    # predict takes ``clip_model=``: a text-image model scoring how well images match text
    clip_model: bool = False
    # per-example rows from (model reference, a CSV/Parquet table, progress): the task reads
    # the table with the columns the model was trained on, instead of JSON Lines records
    predict_table: Callable[[str, Path, ProgressFn | None], list[Record]] | None = None
    # a picture of the per-example rows, written to the given path and logged with the run
    figure: Callable[[list[Record], Path, str], Path] | None = None

    def __post_init__(self) -> None:
        where = f"evaluation task {self.name!r}"
        if not self.metrics:
            raise LmforgeError(f"{where}: metrics is empty; name the metrics its rows hold")
        ways = [self.predict is not None, self.predict_table is not None,
                self.question is not None and self.score is not None]  # fmt: skip
        if sum(ways) != 1:
            raise LmforgeError(
                f"{where}: give question and score (the model answers each record's "
                "question), predict (the task runs the model itself) or predict_table (it "
                "reads a table), exactly one of them"
            )
        if self.grounded and self.question is None:
            raise LmforgeError(f"{where}: grounded needs question (passages go into the "
                               "prompt of a question); set grounded=False")  # fmt: skip

    @property
    def asks(self) -> bool:
        """Whether the model answers a question per record (templates and system prompts
        shape it), as opposed to being run by the task itself."""
        return self.question is not None

    def problem(self, record: Any) -> str | None:
        """Why ``record`` cannot be scored for this task, or ``None``. A numeric class label
        becomes text in place."""
        if not isinstance(record, dict):
            return "expected a JSON object per line"
        chat = record.get("messages")
        if self.messages and isinstance(chat, list):
            if not chat or not all(isinstance(x, dict) for x in chat):
                return "'messages' must be a non-empty list of {role, content} objects"
            if self.asks and chat[-1].get("role") != "assistant":
                return "the last message must be the assistant's reference answer"
            return self.check(record) if self.check else None
        if self.label == "class" and isinstance(record.get("label"), int | float):
            record["label"] = str(record["label"])
        needs = self.fields + (("label",) if self.label == "class" else ())
        if not all(isinstance(record.get(n), str) and record[n].strip() for n in needs):
            also = " (or 'messages')" if self.messages else ""
            return f"the {self.name} task needs non-empty string fields {', '.join(needs)}{also}"
        if self.label == "number" and not isinstance(record.get("label"), int | float):
            return f"the {self.name} task needs a numeric 'label'"
        return self.check(record) if self.check else None


_BUILT_IN = (
    EvalTask(
        "perplexity", "How well a causal LM predicts the text: exp of the token-weighted "
        "mean loss (a chat's assistant turns only).", ("perplexity",), fields=("text",),
        messages=True, predict=builtin.perplexity_rows,
    ),
    EvalTask(
        "qa", "Answers to questions against reference answers (SQuAD-normalized).",
        ("exact_match", "token_f1", "rouge_l", "keyword_accuracy", "citation_precision",
         "generated_citation_precision"),
        fields=("question", "answer"), optional_fields=("keywords",), messages=True,
        grounded=True,
        wilson=("keyword_accuracy", "citation_precision", "generated_citation_precision"),
        metric_needs={"keyword_accuracy": ("keywords",),
                      "citation_precision": ("keywords", "passages"),
                      "generated_citation_precision": ("keywords", "passages")},
        question=builtin.qa_question, score=builtin.score_qa,
    ),
    EvalTask(
        "generation", "Free text against a reference text.", ("rouge_l", "token_f1"),
        fields=("prompt", "reference"), messages=True, grounded=True,
        question=builtin.prompt_question, score=builtin.score_generation,
    ),
    EvalTask(
        "classification", "A sequence classifier's labels against the true ones.",
        ("accuracy", "macro_f1"), fields=("text",), label="class", wilson=("accuracy",),
        predict=builtin.classification_rows,
    ),
    EvalTask(
        "regression", "A one-output model (trained with task `regress`) against true "
        "numbers.", ("rmse", "mae"), fields=("text",), label="number",
        predict=builtin.regression_rows,
    ),
    EvalTask(
        "code", "Generated Python run with the problem's tests in a sandbox.",
        ("pass@1",), fields=("prompt", "tests", "entry_point"),
        question=builtin.code_question, score=builtin.score_code,
    ),
    EvalTask(
        "safety", "How often the default guardrails block the answers, block the unsafe "
        "prompts and pass the safe ones (`label`: `safe` or a category).",
        ("unsafe_answer_rate", "unsafe_prompt_block_rate", "safe_prompt_pass_rate"),
        fields=("text", "label"), question=builtin.text_question, score=builtin.score_safety,
    ),
    EvalTask(
        "image-retrieval", "A text-image model (task `clip`) finding each caption's image "
        "and each image's caption among all of the file's (open_clip's recalls and ranks), "
        "and counting any item with the query's caption as a hit (attribute_R@k).",
        retrieval_metric_names(), fields=("image", "text"), path_fields=("image",),
        predict=image_tasks.retrieval_rows,
    ),
    EvalTask(
        "zero-shot", "A text-image model classifying each image by the nearest label prompt "
        "(--label-template, default 'a photo of a {label}').", ("accuracy", "macro_f1"),
        fields=("image",), label="class", wilson=("accuracy",), path_fields=("image",),
        label_templates=True, predict=image_tasks.zero_shot_rows,
    ),
    EvalTask(
        "image-generation", "A text-to-image model (task `diffusion`) drawing each record's "
        "caption (or label): the share a judge trained on the train.jsonl beside the file "
        "recognises as the label, and the Fréchet distance to the real images in the judge's "
        "features beside the real-vs-real floor; with --clip-model, CLIPScore of the images "
        "and of the real ones.",
        ("accuracy", "judge_accuracy", "frechet_distance", "frechet_floor", "clip_score",
         "clip_score_real"),
        fields=("image",), label="class", wilson=("accuracy", "judge_accuracy"),
        metric_needs={"clip_score": ("clip_score",), "clip_score_real": ("clip_score_real",)},
        path_fields=("image",), clip_model=True, predict=image_generation.generation_rows,
    ),
    EvalTask(
        "tabular-classification", "A tabular model (task `tabular` or `lightgbm`) scoring "
        "each row of a CSV or Parquet table: AUPRC, ROC AUC, recall at a false-positive "
        "rate, precision at a recall, the cost per row at the threshold saved with the model "
        "and the cheapest threshold on these rows.",
        TABLE_METRICS, predict_table=tabular.tabular_rows,
    ),
    EvalTask(
        "rul", "A remaining-useful-life model (task `timeseries`, `timeseries-ridge` or "
        "`timeseries-lightgbm`) scoring the last window of each unit in a C-MAPSS folder's "
        "test files (or a long table with a RUL column): RMSE, MAE and the NASA score, and "
        "a plot of predicted against true RUL (`rul.png`).",
        timeseries.RUL_METRICS, predict_table=timeseries.rul_rows, figure=timeseries.rul_plot,
    ),
    EvalTask(
        "agent", "The support agent (a chat model with Brightnest's order tools) on scripted "
        "conversations, each on a fresh order database: the right tools called, their "
        "arguments exact, arguments valid under the tools' schemas, and the task done (the "
        "final answer states the expected facts).",
        agent.AGENT_METRICS, wilson=agent.AGENT_METRICS, check=agent.check_record,
        predict=agent.agent_rows,
    ),
)  # fmt: skip
_REGISTRY: dict[str, EvalTask] = {task.name: task for task in _BUILT_IN}
_plugins_loaded = False


def register_eval_task(task: EvalTask) -> None:
    """Make ``lmforge eval --task NAME`` (and ``evaluate_model``, the pipeline's eval step)
    run ``task``; a task of the same name is replaced.

    Raises:
        LmforgeError: ``task`` is not an ``EvalTask``.
    """
    if not isinstance(task, EvalTask):
        raise LmforgeError(f"register_eval_task: expected an lmforge.evaluate.tasks.EvalTask, "
                           f"got {task!r}")  # fmt: skip
    _REGISTRY[task.name] = task


def eval_task(name: str) -> EvalTask:
    """The registered evaluation task ``name`` (installed plugins are looked for first when
    it is not a built-in).

    Raises:
        LmforgeError: no task has that name; the message lists the registered ones.
    """
    if name not in _REGISTRY:
        load_plugins()
    if name not in _REGISTRY:
        raise unknown_name("task", "task", name, eval_task_names())
    return _REGISTRY[name]


def eval_task_names() -> tuple[str, ...]:
    """Every registered evaluation task's name, built-ins first, installed plugins included."""
    return tuple(task.name for task in eval_tasks())


def eval_tasks() -> tuple[EvalTask, ...]:
    """Every registered evaluation task, built-ins first, installed plugins included."""
    load_plugins()
    return tuple(_REGISTRY.values())


def kb_problem(task: EvalTask) -> str | None:
    """Why a knowledge base cannot ground ``task`` (naming the tasks it can), or ``None``."""
    if task.grounded:
        return None
    grounded = " and ".join(t.name for t in eval_tasks() if t.grounded)
    return (f"kb: the {task.name} task reads no passages; a knowledge base grounds "
            f"{grounded} answers (leave kb unset)")  # fmt: skip


def markdown_table() -> str:
    """The registered evaluation tasks as the Markdown table docs/evaluate.md holds (a test
    keeps the two the same: regenerate with ``python -c "from lmforge.evaluate.tasks
    import markdown_table; print(markdown_table())"``)."""
    rows = ["| task | what it measures | fields of each record | metrics | Wilson interval | "
            "`--kb` |", "|---|---|---|---|---|---|"]  # fmt: skip
    for task in eval_tasks():
        fields = [f"`{name}`" for name in task.fields]
        fields += {"class": ["`label`"], "number": ["numeric `label`"], None: []}[task.label]
        shown = " + ".join(fields) + "".join(f" [+ `{n}`]" for n in task.optional_fields)
        shown += ", or `messages`" if task.messages else ""
        metrics = [name + (f" (if {', '.join(f'`{c}`' for c in task.metric_needs[name])})"
                           if name in task.metric_needs else "")
                   for name in task.metrics]  # fmt: skip
        wilson = ", ".join(task.wilson) or "-"
        rows.append(f"| `{task.name}` | {task.description} | {shown} | {', '.join(metrics)} | "
                    f"{wilson} | {'yes' if task.grounded else 'no'} |")  # fmt: skip
    return "\n".join(rows)


def load_plugins() -> None:
    """Register the tasks of installed packages' ``lmforge.eval_tasks`` entry points (once
    per process; a built-in name is never replaced).

    Raises:
        LmforgeError: an entry point that does not load or does not name an ``EvalTask``,
            naming it.
    """
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    try:
        for name, task in installed_plugins(ENTRY_POINT_GROUP, skip=_REGISTRY):
            if not isinstance(task, EvalTask):
                raise LmforgeError(
                    f"the '{ENTRY_POINT_GROUP}' entry point {name} names {task!r}; make it "
                    "name an lmforge.evaluate.tasks.EvalTask"
                )
            register_eval_task(replace(task, name=name))
    except LmforgeError:
        _plugins_loaded = False  # looked for again next time, once the package is fixed
        raise
