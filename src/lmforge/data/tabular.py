"""Tables for the tabular tasks: read and check a CSV or Parquet file against the run
config's ``data.columns``, split it (by time when a time column is named), and turn its
rows into model inputs with preprocessing fitted on the training split only.

``TabularProcessor`` is to a table what a tokenizer is to text: it is fitted once on the
training rows (numeric scaling, the category vocabularies, which class is positive), saved
beside the model as ``tabular_processor.json`` (plain JSON: nothing is unpickled when a
model loads), and applied unchanged to validation, evaluation and served rows.

Numeric scaling, as in the FT-Transformer paper's setup:
- ``quantile``: each value's rank among the training values (256 quantiles, linear in
  between), mapped through the inverse normal CDF: heavy tails such as ``Amount`` come out
  as well-behaved Gaussian scores, and a new extreme value cannot blow up.
- ``standard``: ``(x - mean) / std`` of the training values.
- ``none``: the raw values (what trees want).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lmforge.config.schema import TabularColumns
from lmforge.errors import LmforgeError
from lmforge.home import atomic_write_text

PROCESSOR_FILE = "tabular_processor.json"
QUANTILES = 256
SCALINGS = ("quantile", "standard", "none")
_POSITIVE_NAMES = ("1", "1.0", "true", "yes", "fraud", "positive")


@dataclass
class Table:
    """Named columns of equal length, read from ``source``."""

    columns: dict[str, np.ndarray]
    source: str

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def take(self, rows: np.ndarray) -> Table:
        """The rows at ``rows`` (indexes or a boolean mask), in that order."""
        return Table({name: values[rows] for name, values in self.columns.items()}, self.source)


def read_table(path: Path, columns: TabularColumns, *, source_name: str = "data.train") -> Table:
    """The columns ``columns`` uses, read from a ``.csv`` or ``.parquet`` file and checked.

    Raises:
        LmforgeError: no such file, another file type, a named column the file lacks, a
            missing value, or text in a numeric column; the message names the column.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise LmforgeError(f"{source_name}: no such file '{path}'; pass a .csv or .parquet file")
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if path.suffix == ".parquet":
        arrow = pq.read_table(path)
    elif path.suffix == ".csv":
        arrow = pacsv.read_csv(path)
    else:
        raise LmforgeError(
            f"{source_name}: '{path}' is a {path.suffix or 'suffix-less'} file; tabular data is "
            "read from .csv or .parquet"
        )
    available = list(arrow.column_names)
    wanted = used_columns(columns, available)
    for setting, name in wanted:
        if name not in available:
            raise LmforgeError(
                f"data.columns.{setting}: no column {name!r} in {source_name} ({path}); "
                f"its columns are {', '.join(available)}"
            )
    table = Table({name: arrow.column(name).to_numpy(zero_copy_only=False)
                   for _, name in wanted}, f"{source_name} ({path})")  # fmt: skip
    time = columns.time
    if time is not None and table.columns[time].dtype.kind == "M":  # timestamps order as ns
        table.columns[time] = table.columns[time].astype("datetime64[ns]").astype(np.int64)
    _check_values(table, columns, wanted)
    return table


def used_columns(columns: TabularColumns, available: list[str]) -> list[tuple[str, str]]:
    """``(setting, column)`` for every column the schema uses: named ones, and for
    ``numeric: null`` every column of ``available`` not named elsewhere or excluded."""
    named = [("target", columns.target)]
    named += [("categorical", name) for name in columns.categorical]
    named += [(setting, getattr(columns, setting)) for setting in ("time", "weight")
              if getattr(columns, setting) is not None]  # fmt: skip
    named += [("exclude", name) for name in columns.exclude]
    if columns.numeric is not None:
        numeric = list(columns.numeric)
    else:
        taken = {name for _, name in named}
        numeric = [name for name in available if name not in taken]
    seen: dict[str, str] = {}
    for setting, name in named + [("numeric", name) for name in numeric]:
        if name in seen:
            raise LmforgeError(
                f"data.columns.{setting}: column {name!r} is already data.columns."
                f"{seen[name]}; name each column once"
            )
        seen[name] = setting
    return [pair for pair in named if pair[0] != "exclude"] + [("numeric", n) for n in numeric]


def _check_values(table: Table, columns: TabularColumns, wanted: list[tuple[str, str]]) -> None:
    for setting, name in wanted:
        values = table.columns[name]
        if setting in {"numeric", "time", "weight"}:
            if values.dtype.kind not in "biuf":
                sample = next((v for v in values if not isinstance(v, int | float)), values[0])
                hint = "list it in data.columns.categorical" if setting == "numeric" else (
                    "point it at a numeric column")  # fmt: skip
                raise LmforgeError(
                    f"data.columns.{setting}: column {name!r} of {table.source} holds "
                    f"{type(sample).__name__} values such as {sample!r}, not numbers; {hint}"
                )
            missing = np.flatnonzero(~np.isfinite(values.astype(np.float64)))
        else:
            missing = np.flatnonzero([v is None or v != v for v in values])  # None or NaN
        if len(missing):
            raise LmforgeError(
                f"data.columns.{setting}: column {name!r} of {table.source} has {len(missing)} "
                f"missing or non-finite values (first at data row {missing[0] + 1}); fill or "
                "drop those rows first"
            )
    classes = np.unique(table.columns[columns.target].astype(str))
    if len(classes) < 2:
        raise LmforgeError(
            f"data.columns.target: column {columns.target!r} of {table.source} holds only "
            f"the class {classes.tolist()}; a classifier needs rows of two classes"
        )
    if len(classes) > 2:
        shown = ", ".join(classes[:6].tolist())
        raise LmforgeError(
            f"data.columns.target: column {columns.target!r} of {table.source} holds "
            f"{len(classes)} classes ({shown}...); the tabular tasks score two classes "
            "(map the target to two first)"
        )


def split_table(
    table: Table, *, val_ratio: float, time_column: str | None, seed: int
) -> tuple[Table, Table]:
    """``(train, validation)``: the latest ``val_ratio`` of rows by ``time_column``, or a
    seeded random share when it is None. Row order is kept within each part."""
    count = len(table)
    held = round(count * val_ratio)
    if time_column is not None:
        order = np.argsort(table.columns[time_column], kind="stable")
        kept, latest = order[: count - held], order[count - held :]
        return table.take(np.sort(kept)), table.take(np.sort(latest))
    chosen = np.zeros(count, dtype=bool)
    chosen[np.random.default_rng(seed).permutation(count)[:held]] = True
    return table.take(~chosen), table.take(chosen)


@dataclass
class Decision:
    """When a score becomes a "yes": the cost-optimal threshold and where it came from."""

    threshold: float = 0.5
    missed_cost: float = 1.0  # a missed positive (a fraud let through)
    false_alarm_cost: float = 1.0  # a negative flagged (a good customer stopped)
    chosen_on: str = "default"  # what data the threshold was chosen on
    at_fpr: float = 0.001  # evaluation reports recall at this false-positive rate
    at_recall: float = 0.8  # ... and precision at this recall


@dataclass
class TabularProcessor:
    """Turns table rows into model inputs; fitted on training rows, saved as JSON."""

    columns: TabularColumns
    scaling: str = "quantile"
    numeric: list[str] = field(default_factory=list)
    stats: dict[str, list[float]] = field(default_factory=dict)  # per numeric column
    categories: dict[str, list[str]] = field(default_factory=dict)  # index 0: unseen
    classes: list[str] = field(default_factory=list)  # [negative, positive]
    class_counts: list[int] = field(default_factory=list)  # training rows per class
    means: dict[str, float] = field(default_factory=dict)  # training mean per numeric column
    # per feature, the training distribution that served rows are compared with (drift):
    # bin edges (deciles; categories for a categorical column) and each bin's share
    reference: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    decision: Decision = field(default_factory=Decision)
    _grids: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def fitted(self) -> bool:
        return bool(self.classes)

    @property
    def trained_columns(self) -> TabularColumns:
        """The columns as fitted: ``numeric`` pinned to the ones trained on, so a file with
        extra columns (ids, notes) is read for exactly the model's features."""
        return self.columns.model_copy(update={"numeric": list(self.numeric)})

    @property
    def features(self) -> list[str]:
        """Every feature column, numeric first: the model's token order."""
        return self.numeric + list(self.columns.categorical)

    @property
    def cardinalities(self) -> list[int]:
        """Per categorical column: its vocabulary size, the unseen slot included."""
        return [len(self.categories[name]) + 1 for name in self.columns.categorical]

    def fit(self, table: Table) -> None:
        """Learn scaling, vocabularies and the class order from ``table`` (training rows)."""
        if self.scaling not in SCALINGS:
            raise LmforgeError(f"task.scaling: {self.scaling!r}; use one of {', '.join(SCALINGS)}")
        self.numeric = [name for setting, name in used_columns(self.columns, list(table.columns))
                        if setting == "numeric"]  # fmt: skip
        self._grids = None
        for name in self.numeric:
            values = table.columns[name].astype(np.float64)
            self.means[name] = float(values.mean())
            if self.scaling == "quantile":
                grid = np.quantile(values, np.linspace(0, 1, QUANTILES))
                self.stats[name] = grid.tolist()
            elif self.scaling == "standard":
                self.stats[name] = [float(values.mean()), float(values.std()) or 1.0]
            edges = np.unique(np.quantile(values, np.linspace(0.1, 0.9, 9)))
            shares = np.bincount(np.searchsorted(edges, values, side="right"),
                                 minlength=len(edges) + 1) / len(values)  # fmt: skip
            self.reference[name] = {"edges": edges.tolist(), "shares": shares.tolist()}
        for name in self.columns.categorical:
            self.categories[name] = sorted({str(v) for v in table.columns[name]})
            counts = {value: 0 for value in self.categories[name]}
            for value in table.columns[name]:
                counts[str(value)] += 1
            seen = [count / len(table) for count in counts.values()]
            self.reference[name] = {"edges": self.categories[name], "shares": [*seen, 0.0]}
        classes = sorted({str(v) for v in table.columns[self.columns.target]})
        positive = next((c for c in classes if c.lower() in _POSITIVE_NAMES), None)
        if positive is None:  # the rarer class is the one to find
            target = table.columns[self.columns.target].astype(str)
            positive = min(classes, key=lambda c: int((target == c).sum()))
        self.classes = [next(c for c in classes if c != positive), positive]
        positives = int(self.labels(table).sum())
        self.class_counts = [len(table) - positives, positives]

    def raw_numeric(self, table: Table) -> np.ndarray:
        """``(N, F)`` float64: the numeric columns as given."""
        if not self.numeric:
            return np.zeros((len(table), 0))
        return np.stack([table.columns[n].astype(np.float64) for n in self.numeric], axis=1)

    def numeric_matrix(self, table: Table) -> np.ndarray:
        """``(N, F)`` float32: the numeric columns, scaled."""
        return self.scale(self.raw_numeric(table))

    def scale(self, raw: np.ndarray) -> np.ndarray:
        """``(N, F)`` raw numeric values to the model's inputs."""
        if not self.numeric:
            return raw.astype(np.float32)
        if self.scaling == "standard":
            mean = np.array([self.stats[n][0] for n in self.numeric])
            std = np.array([self.stats[n][1] for n in self.numeric])
            return ((raw - mean) / std).astype(np.float32)
        if self.scaling == "quantile":
            if self._grids is None:  # (F, QUANTILES), built once: serving scales row by row
                self._grids = np.array([self.stats[n] for n in self.numeric])
            return _quantile_normal(raw, self._grids).astype(np.float32)
        return raw.astype(np.float32)

    def category_codes(self, table: Table) -> np.ndarray:
        """``(N, C)`` int64: each categorical value's index (0 for a value never trained on)."""
        codes = []
        for name in self.columns.categorical:
            index = {value: i + 1 for i, value in enumerate(self.categories[name])}
            codes.append([index.get(str(v), 0) for v in table.columns[name]])
        return np.asarray(codes, dtype=np.int64).T.reshape(len(table), len(codes))

    def labels(self, table: Table) -> np.ndarray:
        """``(N,)`` 1 for the positive class, 0 for the other; an unknown class is an error."""
        target = table.columns[self.columns.target].astype(str)
        unknown = sorted(set(np.unique(target)) - set(self.classes))
        if unknown:
            raise LmforgeError(
                f"data.columns.target: {table.source} has the class {unknown[0]!r}, which the "
                f"training data lacks (classes: {', '.join(self.classes)})"
            )
        return (target == self.classes[1]).astype(np.int64)

    def weights(self, table: Table) -> np.ndarray:
        """``(N,)`` float32 row weights: the weight column, or ones."""
        name = self.columns.weight
        if name is None:
            return np.ones(len(table), dtype=np.float32)
        return table.columns[name].astype(np.float32)

    def rows_table(self, rows: list[dict[str, Any]], *, where: str = "rows") -> Table:
        """A table of feature values from JSON rows (a request), checked field by field.

        Raises:
            LmforgeError: a missing feature, a number that is not one; names the field.
        """
        columns: dict[str, list[Any]] = {name: [] for name in self.features}
        for i, row in enumerate(rows):
            if not isinstance(row, dict):
                raise LmforgeError(f"{where}[{i}]: expected an object of feature values")
            for name in self.numeric:
                value = row.get(name)
                if isinstance(value, bool) or not isinstance(value, int | float) or not (
                    math.isfinite(value)
                ):  # fmt: skip
                    got = "missing" if name not in row else f"{value!r}"
                    raise LmforgeError(f"{where}[{i}].{name}: {got}; expected a finite number")
                columns[name].append(float(value))
            for name in self.columns.categorical:
                if name not in row or row[name] is None:
                    raise LmforgeError(f"{where}[{i}].{name}: missing; expected a category")
                columns[name].append(str(row[name]))
        arrays = {n: np.asarray(v, dtype=np.float64) for n, v in columns.items()
                  if n in self.numeric}  # fmt: skip
        arrays |= {n: np.asarray(columns[n], dtype=object) for n in self.columns.categorical}
        return Table(arrays, where)

    # --- saved beside the model ----------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "columns": self.columns.model_dump(mode="json"),
            "scaling": self.scaling,
            "numeric": self.numeric,
            "stats": self.stats,
            "categories": self.categories,
            "classes": self.classes,
            "class_counts": self.class_counts,
            "means": self.means,
            "reference": self.reference,
            "decision": vars(self.decision),
        }

    def save_pretrained(self, directory: str | Path) -> None:
        path = Path(directory) / PROCESSOR_FILE
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> TabularProcessor:
        """The processor saved in model directory ``directory``."""
        path = Path(directory) / PROCESSOR_FILE
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
            return cls(
                columns=TabularColumns.model_validate(saved["columns"]),
                scaling=saved["scaling"],
                numeric=list(saved["numeric"]),
                stats=saved["stats"],
                categories=saved["categories"],
                classes=list(saved["classes"]),
                class_counts=list(saved.get("class_counts", [])),
                means=saved.get("means", {}),
                reference=saved.get("reference", {}),
                decision=Decision(**saved.get("decision", {})),
            )
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise LmforgeError(
                f"{path}: not a readable tabular processor ({err}); the model folder is "
                "incomplete, so re-save it from its training run"
            ) from None


def population_stability(
    expected: Sequence[float] | np.ndarray, actual: Sequence[float] | np.ndarray
) -> float:
    """The population stability index of ``actual`` bin shares against ``expected`` ones:
    sum (a - e) ln(a / e), each share floored at 1e-4 so an empty bin stays finite.
    Rule of thumb: below 0.1 stable, 0.1-0.25 a moderate shift, above 0.25 a large one."""
    e = np.maximum(np.asarray(expected, dtype=np.float64), 1e-4)
    a = np.maximum(np.asarray(actual, dtype=np.float64), 1e-4)
    return float(np.sum((a - e) * np.log(a / e)))


def _quantile_normal(raw: np.ndarray, grids: np.ndarray) -> np.ndarray:
    """Each value of ``raw`` ``(N, F)``: its rank in its column's quantile grid (``grids``,
    ``(F, Q)``; 0..1, linear between quantiles) as a normal score."""
    from scipy.special import ndtri

    # Ties in a grid (a column with many equal values) make interp pick the last; use the
    # middle of the tied span by interpolating on both sides.
    levels = np.linspace(0, 1, grids.shape[1])
    rank = np.empty(raw.shape)
    for j, grid in enumerate(grids):
        values = raw[:, j]
        rank[:, j] = 0.5 * (np.interp(values, grid, levels)
                            - np.interp(-values, -grid[::-1], -levels[::-1]))  # fmt: skip
    return ndtri(np.clip(rank, 1e-3, 1 - 1e-3))
