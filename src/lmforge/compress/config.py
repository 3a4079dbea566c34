"""``CompressConfig``: everything one ``lmforge compress`` run needs, as one object.

The CLI builds it from ``--config FILE``, its flags and ``--set KEY=VALUE``; a pipeline's
``compress`` step takes the same keys under ``with:``. ``lmforge config schema --kind
compress`` prints its JSON schema. Methods are checked against the registry
(``compress/methods.py``), so a wrong chain is reported as ``methods[i]: ...``.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field, field_validator

from lmforge.compress.methods import check_chain, compress_method, method_names
from lmforge.config.section import Section
from lmforge.data.bundled import BUNDLED_PREFIX, bundled_path


class CompressConfig(Section):
    """A chain of compress methods from one model to a smaller one."""

    config_name: ClassVar[str] = "compress config"
    schema_kind: ClassVar[str] = "compress"
    example: ClassVar[str] = "examples/compress/sentiment_int8.yaml"

    model: str = Field(
        description="The source: a zoo name, a local path, registry:NAME@ALIAS or run:RUN_ID."
    )
    methods: list[str] = Field(
        default_factory=lambda: ["int8-dynamic"],
        description=f"Methods to run in order ({', '.join(method_names())}); a "
        "quantization comes last.",
    )
    data: Path | None = Field(
        default=None,
        description="Corpus: what distill trains on, the domain prune-vocab keeps, "
        "calibration text for int8-dynamic (default: the bundled dialogs).",
    )
    eval_data: Path | None = Field(
        default=None,
        description="Held-out data for the quality column: labeled text for a classifier "
        "(default: its training run's validation file), texts for an encoder.",
    )
    student_layers: int = Field(
        default=3, gt=0, description="distill: layers the student keeps, evenly spaced."
    )
    epochs: float | None = Field(
        default=None, gt=0, description="distill: passes over data (default: 6 classifiers, 1 LMs)."
    )
    temperature: float = Field(
        default=2.0, gt=0, description="distill: softmax temperature of the teacher's outputs."
    )
    measure: bool = Field(
        default=True, description="Measure size, speed and quality before and after."
    )

    @field_validator("data", "eval_data", mode="before")
    @classmethod
    def _bundled(cls, value: object) -> object:
        """``bundled:NAME/SPLIT`` names a bundled dataset, as in pipeline files."""
        if isinstance(value, str) and value.startswith(BUNDLED_PREFIX):
            return bundled_path(value)
        return value

    @field_validator("methods")
    @classmethod
    def _a_chain(cls, methods: list[str]) -> list[str]:
        problems = check_chain(methods)
        if problems:
            raise ValueError("\n".join(problems))
        return methods

    def needs(self) -> list[str]:
        """Problems with the files this chain reads: a method that needs ``data`` without
        it, a path that is not a file. One line each, naming the setting."""
        problems = []
        for index, name in enumerate(self.methods):
            method = compress_method(name)
            if method.corpus and self.data is None:
                problems.append(f"methods[{index}]: {name} needs data: {method.corpus}")
        for key in ("data", "eval_data"):
            path = getattr(self, key)
            if path is not None and not Path(path).is_file():
                problems.append(f"{key}: no such file: {path}; give an existing "
                                ".jsonl/.csv/.json file")  # fmt: skip
        return problems
