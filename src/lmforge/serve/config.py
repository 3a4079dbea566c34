"""``ServeConfig``: everything one ``lmforge serve`` needs, as one object.

The CLI builds it from ``--config FILE``, its flags and ``--set KEY=VALUE``
(``lmforge config schema --kind serve`` lists the keys); ``build_handler`` takes it whole,
and a pipeline's ``deploy`` step takes the same keys under ``with:`` and writes them to
``serve.yaml``. Validating one imports no model code.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from lmforge.config.section import Section
from lmforge.serve.backends import backend_help

# settings given once per item on the command line (--adapter NAME=REF, repeated)
REPEATED_FLAGS = {"adapters": "--adapter", "classifiers": "--classifier"}


def flag(setting: str) -> str:
    """The ``lmforge serve`` flag that sets ``setting`` (``max_batch`` -> ``--max-batch``)."""
    return REPEATED_FLAGS.get(setting) or "--" + setting.replace("_", "-")


class ServeConfig(Section):
    """A model served behind the OpenAI-compatible API."""

    config_name: ClassVar[str] = "serve config"
    schema_kind: ClassVar[str] = "serve"
    example: ClassVar[str] = "examples/serve/brightnest.yaml"

    model: str = Field(
        description="What to serve: a zoo name, a local path, a .gguf file, "
        "registry:NAME@ALIAS or run:RUN_ID."
    )
    served_name: str | None = Field(
        default=None, description="The model id clients send; default: the model reference."
    )
    host: str = Field(default="127.0.0.1", description="Address to bind.")
    port: int = Field(default=8000, gt=0, lt=65536, description="Port to listen on.")
    adapters: dict[str, str] = Field(
        default_factory=dict,
        description="LoRA adapters of the model by name (name: reference); a request picks "
        "one by putting its name in 'model'.",
    )
    embed: str | None = Field(
        default=None, description="An encoder to serve on /v1/embeddings beside the model."
    )
    guard: str | None = Field(
        default=None,
        description="Content filtering: 'default', a bundled policy ('brightnest') or a "
        "policy YAML (docs/serving.md); null for none.",
    )
    kb: str | None = Field(
        default=None,
        description="Ground chat answers in this knowledge base (lmforge kb build): passages "
        "for each user turn go into the prompt, citations come back in the response.",
    )
    kb_top_k: int = Field(default=3, ge=1, description="Passages per user turn.")
    kb_hybrid: bool = Field(
        default=False, description="Retrieve with vectors + BM25 keywords (RRF)."
    )
    kb_verify_citations: bool = Field(
        default=True,
        description="Check each [n] marker of a grounded answer against the passages and "
        "point it at the passages holding what the sentence states (not in streamed answers).",
    )
    classifiers: dict[str, str] = Field(
        default_factory=dict,
        description="Text classifiers to serve on /v1/classify and /v1/explain (name: reference).",
    )
    images: list[str] = Field(
        default_factory=list,
        description="Image indexes to serve on /v1/images/search (lmforge images index "
        "build); their text-image models also classify images on /v1/classify.",
    )
    image_model: str | None = Field(
        default=None,
        description="A text-to-image model (a diffusion run or a diffusers pipeline folder) "
        "to serve on /v1/images/generations, beside the chat model.",
    )
    scorers: dict[str, str] = Field(
        default_factory=dict,
        description="Tabular models (task tabular or lightgbm) and remaining-useful-life "
        "models (task timeseries and its baselines) to serve for real-time scoring on "
        "/v1/score/NAME (name: reference).",
    )
    drift_threshold: float = Field(
        default=0.2,
        gt=0,
        description="Population stability index above which a scored feature counts as "
        "drifted from its training data (/metrics, /v1/score/NAME/drift).",
    )
    compile_scorers: bool = Field(
        default=True,
        description="Compile each Transformer scorer's explanation pass with "
        "torch.compile at start (10-20 s once; then about a third of the time per explained row).",
    )
    sentiment: str | None = Field(
        default=None,
        description="Score every user turn with this classifier (a classifiers name or a "
        "reference) and flag conversations to escalate.",
    )
    escalate_after: int = Field(
        default=2, ge=1, description="Escalate after this many negative user turns in a row."
    )
    negative_labels: list[str] = Field(
        default_factory=lambda: ["negative"],
        description="The sentiment labels that count as negative.",
    )
    agent: bool = Field(
        default=False,
        description="Serve the support agent (POST /v1/agent/turns and the web page's Agent "
        "mode): the model with Brightnest's order tools over $LMFORGE_HOME/agent/orders.db.",
    )
    quantize: Literal["none", "int8"] = Field(
        default="none",
        description="int8: SmoothQuant + dynamic INT8, the model `lmforge compress --method "
        "int8-dynamic` writes (several times faster on CPU).",
    )
    backend: str = Field(
        default="auto",
        description=backend_help(),
    )
    max_batch: int = Field(
        default=16, ge=1, description="Sequences decoded together (continuous batching)."
    )
    max_queue: int = Field(
        default=256, ge=0, description="Requests waiting for a batch slot; more get HTTP 503."
    )
    max_model_len: int | None = Field(
        default=None, ge=2, description="Longest prompt + completion; default: the model's."
    )
    max_tokens_limit: int = Field(
        default=4096, ge=1, description="The most tokens one request may generate."
    )
    api_key_required: bool = Field(
        default=False, description="Demand an API key even before any exists."
    )
    rate_limit: int = Field(
        default=0, ge=0, description="Requests per minute per API key (0: no limit)."
    )
    store: str | None = Field(
        default=None,
        description="Where API keys, sessions, stored responses and rate limits live: "
        "postgresql://USER:PASSWORD@HOST:PORT/DB, shared by replicas, or a SQLite file "
        "(default: $LMFORGE_STORE_URL, else $LMFORGE_HOME/serve.db).",
    )
    drain_seconds: int = Field(
        default=30,
        ge=0,
        description="On SIGTERM the server stops accepting connections "
        "and lets running requests and streams finish for up to this long, then cuts them "
        "and exits (keep Kubernetes' terminationGracePeriodSeconds above it).",
    )
    compute_niceness: int = Field(
        default=0,
        ge=0,
        le=19,
        description="Run the model's threads this much below the HTTP loop's CPU priority "
        "(Linux nice). On a machine that only serves, 10 lets streams and the session store "
        "go first while the model computes (docs/serving.md, 'Scale out'); leave 0 where "
        "other work shares the CPU, since the lowered model gives way to it too.",
    )
    max_body_bytes: int = Field(
        default=1_000_000, ge=1, description="Largest request body accepted (HTTP 413 above)."
    )
    access_log: bool = Field(
        default=True, description="One JSON line per request on stderr (no prompt text)."
    )
    log_prompts: bool = Field(
        default=False, description="Include prompts in the access log (off: privacy)."
    )

    @property
    def name(self) -> str:
        """The model id clients send."""
        return self.served_name or self.model

    def command_line(self) -> list[str]:
        """``lmforge serve`` with this config as flags: the model, the address, and every
        other setting that differs from its default."""
        command = ["lmforge", "serve", self.model, "--host", self.host, "--port", str(self.port)]
        defaults = ServeConfig(model=self.model)
        for setting in ServeConfig.model_fields:
            value = getattr(self, setting)
            if setting in {"model", "host", "port"} or value == getattr(defaults, setting):
                continue
            if setting in REPEATED_FLAGS:
                for name, ref in value.items():
                    command += [flag(setting), f"{name}={ref}"]
            elif isinstance(value, bool):
                command.append(flag(setting) if value else "--no-" + flag(setting)[2:])
            elif isinstance(value, list):
                command += [flag(setting), ",".join(value)]
            elif value is not None:
                command += [flag(setting), str(value)]
        return command
