"""Sensor time series for the timeseries tasks: read, scaled and cut into windows.

Two sources (``data.series.format``):

- ``cmapss``: NASA's C-MAPSS files of one subset in a folder (``lmforge.data.cmapss``);
  training rows from ``train_``, test rows from ``test_`` with their RUL from ``RUL_``.
- ``long``: a CSV or Parquet table, one row per entity (machine) and time, with sensor
  columns, optional operating-setting columns and an optional remaining-useful-life column
  (without one, every entity is taken to run to failure: RUL is the time to its last row).

A ``SeriesProcessor`` is fitted on the training rows only (which sensors to keep, how to
standardise them) and saved with the model, so evaluation and serving scale readings the
way training did. A window is the ``window`` readings up to and including one time step
(``(W, K)`` for the ``K`` kept sensors); an entity with fewer readings than that has its
first reading repeated in front. Training windows end at every ``stride``-th reading,
counted back from each entity's last one; evaluation scores each entity's last window, as
the C-MAPSS literature does.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lmforge.config.schema import SeriesColumns
from lmforge.data.cmapss import SENSORS, SETTINGS, load_cmapss, rul_of_test_rows
from lmforge.errors import LmforgeError
from lmforge.home import atomic_write_text

SERIES_PROCESSOR_FILE = "series_processor.json"
CMAPSS_DECIMALS = (0, 2, 0)  # altitude, Mach, throttle angle: rounded to name a condition
LONG_DECIMALS = 2  # a long table's condition columns, rounded to name a condition


@dataclass
class Series:
    """Readings of many entities; each entity's rows are consecutive and in time order."""

    source: str  # where they came from, for messages
    entity: np.ndarray  # (N,) the entity of each row
    time: np.ndarray  # (N,)
    settings: np.ndarray  # (N, S) operating settings (S may be 0)
    values: np.ndarray  # (N, F) sensor readings
    names: list[str]  # the F sensors' names
    rul: np.ndarray | None  # (N,) cycles left after each row, uncapped; None when unknown

    def __len__(self) -> int:
        return len(self.entity)

    def bounds(self) -> list[tuple[int, int]]:
        """Each entity's ``[start, end)`` rows, in the order they appear."""
        change = np.flatnonzero(self.entity[1:] != self.entity[:-1]) + 1
        edges = [0, *change.tolist(), len(self.entity)]
        return list(itertools.pairwise(edges))

    def take_entities(self, entities: np.ndarray) -> Series:
        rows = np.isin(self.entity, entities)
        return Series(self.source, self.entity[rows], self.time[rows], self.settings[rows],
                      self.values[rows], self.names,
                      None if self.rul is None else self.rul[rows])  # fmt: skip


def read_series(path: Path, columns: SeriesColumns, *, split: str = "train",
                source_name: str = "data.train") -> Series:  # fmt: skip
    """The rows of ``path``: a C-MAPSS folder's ``split`` (train or test) file, or a long
    table.

    Raises:
        LmforgeError: a missing file or column, a malformed line or value (naming the file
            and the line or column), or an entity whose times do not increase.
    """
    path = Path(path).expanduser()
    if columns.format == "cmapss":
        if not path.is_dir():
            raise LmforgeError(f"{source_name}: '{path}' is not a folder; C-MAPSS data is the "
                               f"folder holding train_{columns.subset}.txt, test_ and RUL_ "
                               "(lmforge data simulate cmapss writes one)")  # fmt: skip
        subset = load_cmapss(path, columns.subset)
        rows = subset.train if split == "train" else subset.test
        rul = _time_to_last(rows[:, 0], rows[:, 1]) if split == "train" else rul_of_test_rows(
            subset)  # fmt: skip
        return Series(f"{source_name} ({path}/{split}_{columns.subset}.txt)", rows[:, 0].astype(
            np.int64), rows[:, 1], rows[:, 2:5], rows[:, 5:], list(SENSORS), rul)  # fmt: skip
    return _read_long(path, columns, source_name)


def _read_long(path: Path, columns: SeriesColumns, source_name: str) -> Series:
    if not path.is_file():
        raise LmforgeError(f"{source_name}: no such file '{path}'; pass a .csv or .parquet file")
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if path.suffix not in {".csv", ".parquet"}:
        raise LmforgeError(f"{source_name}: '{path}' is a {path.suffix or 'suffix-less'} file; "
                           "long-form series are read from .csv or .parquet")  # fmt: skip
    arrow = pq.read_table(path) if path.suffix == ".parquet" else pacsv.read_csv(path)
    available = list(arrow.column_names)
    named = {"entity": [columns.entity], "time": [columns.time], "conditions": columns.conditions,
             "target": [columns.target] if columns.target else []}  # fmt: skip
    taken = {name for names in named.values() for name in names}
    features = columns.features if columns.features is not None else [
        c for c in available if c not in taken]  # fmt: skip
    for setting, names in [*named.items(), ("features", features)]:
        for name in names:
            if name not in available:
                raise LmforgeError(f"data.series.{setting}: no column {name!r} in {source_name} "
                                   f"({path}); its columns are {', '.join(available)}")  # fmt: skip
    where = f"{source_name} ({path})"

    def numbers(name: str) -> np.ndarray:
        values = arrow.column(name).to_numpy(zero_copy_only=False)
        try:
            values = values.astype(np.float64)
        except (TypeError, ValueError):
            raise LmforgeError(f"{where}: column {name!r} holds text; sensor series "
                               "are numbers") from None  # fmt: skip
        bad = np.flatnonzero(~np.isfinite(values))
        if len(bad):
            raise LmforgeError(f"{where}: column {name!r} row {bad[0] + 1} is missing or not "
                               "finite; fill or drop it")  # fmt: skip
        return values

    entity = arrow.column(columns.entity).to_numpy(zero_copy_only=False)
    time = numbers(columns.time)
    order = np.lexsort((time, entity))  # by entity, then time (stable)
    entity, time = entity[order], time[order]
    repeated = np.flatnonzero((entity[1:] == entity[:-1]) & (time[1:] <= time[:-1]))
    if len(repeated):
        raise LmforgeError(f"{where}: entity {entity[repeated[0]]!r} has time "
                           f"{time[repeated[0]]:g} twice; one row per entity and time")  # fmt: skip
    settings = np.column_stack([numbers(c)[order] for c in columns.conditions]) if (
        columns.conditions) else np.zeros((len(order), 0))  # fmt: skip
    values = np.column_stack([numbers(c)[order] for c in features])
    rul = numbers(columns.target)[order] if columns.target else _time_to_last(entity, time)
    return Series(where, entity, time, settings, values, list(features), rul)


def _time_to_last(entity: np.ndarray, time: np.ndarray) -> np.ndarray:
    """Each row's time to its entity's last row (rows grouped by entity)."""
    _, index = np.unique(entity, return_inverse=True)
    last = np.full(index.max() + 1, -np.inf)
    np.maximum.at(last, index.reshape(-1), time)
    return last[index.reshape(-1)] - time


def cut_before_failure(series: Series, seed: int) -> Series:
    """Each entity cut off at a random reading before its last, as NASA cut C-MAPSS' test
    units: what held-out run-to-failure entities are scored on (their last window)."""
    rng = np.random.default_rng(seed)
    keep = np.zeros(len(series), dtype=bool)
    for start, end in series.bounds():
        length = end - start
        keep[start : start + int(rng.integers(max(length // 10, 1), length))] = True
    return Series(series.source, series.entity[keep], series.time[keep], series.settings[keep],
                  series.values[keep], series.names,
                  None if series.rul is None else series.rul[keep])  # fmt: skip


@dataclass(frozen=True)
class SensorScaling:
    """Which sensors to keep and how to standardise them, fitted on training rows.

    - Operating conditions (with ``by_condition``): the training rows' settings rounded
      (``decimals`` per setting; C-MAPSS: altitude to a whole number, Mach to two decimals,
      throttle angle to a whole number) name the conditions; each condition's centre is its
      rows' mean settings, and any row (a test row too) belongs to the nearest centre.
      Without ``by_condition`` there is one.
    - Constant sensors: a sensor that takes at most ``max_distinct`` distinct values within
      every condition of the training rows carries no wear and is dropped (FD001's s1, s5,
      s6, s10, s16, s18 and s19 on NASA's files).
    - The kept sensors are standardised with their condition's training mean and standard
      deviation (per-operating-condition normalisation), or the overall ones.
    """

    names: tuple[str, ...]  # every sensor the rows hold
    centres: np.ndarray  # (C, S) mean settings per condition
    spread: np.ndarray  # (S,) the settings' scale for the nearest-centre distance
    kept: tuple[int, ...]  # indexes into names
    mean: np.ndarray  # (C, kept)
    std: np.ndarray  # (C, kept)

    @classmethod
    def fit(cls, settings: np.ndarray, values: np.ndarray, names: list[str], *,
            by_condition: bool = False, decimals: tuple[int, ...] | int = LONG_DECIMALS,
            max_distinct: int = 2) -> SensorScaling:  # fmt: skip
        """Fitted on training rows: ``settings (N, S)``, sensor ``values (N, F)``."""
        if by_condition and settings.shape[1]:
            places = np.broadcast_to(np.asarray(decimals), (settings.shape[1],))
            keys = np.column_stack([settings[:, j].round(int(places[j]))
                                    for j in range(settings.shape[1])]) + 0.0  # fmt: skip
            _, groups = np.unique(keys, axis=0, return_inverse=True)
            groups = groups.reshape(-1)
        else:
            groups = np.zeros(len(values), dtype=np.int64)
        conditions = range(int(groups.max()) + 1)
        centres = np.stack([settings[groups == c].mean(0) for c in conditions])
        distinct = np.array([[len(np.unique(values[groups == c, j])) for j in
                              range(values.shape[1])] for c in conditions])  # (C, F)  # fmt: skip
        kept = tuple(int(j) for j in np.flatnonzero((distinct > max_distinct).any(0)))
        if not kept:
            raise LmforgeError(f"data.series: every sensor of {', '.join(names)} is constant "
                               "in the training rows; nothing to learn from")  # fmt: skip
        chosen = values[:, list(kept)]
        mean = np.stack([chosen[groups == c].mean(0) for c in conditions])
        std = np.stack([chosen[groups == c].std(0) for c in conditions])
        spread = settings.std(0) if len(settings) else np.ones(settings.shape[1])
        return cls(tuple(names), centres, np.where(spread > 0, spread, 1.0), kept, mean,
                   np.where(std > 0, std, 1.0))  # fmt: skip

    @property
    def sensors(self) -> list[str]:
        """The kept sensors' names."""
        return [self.names[j] for j in self.kept]

    def conditions(self, settings: np.ndarray) -> np.ndarray:
        """Each row's operating condition: the nearest centre, ``(N,)``."""
        distance = (settings[:, None] - self.centres[None]) / self.spread  # (N, C, S)
        return np.argmin((distance**2).sum(-1), axis=1)

    def transform(self, settings: np.ndarray, values: np.ndarray) -> np.ndarray:
        """The kept sensors of the rows, standardised for their condition: ``(N, kept)``."""
        condition = self.conditions(settings)
        return (values[:, list(self.kept)] - self.mean[condition]) / self.std[condition]

    def to_dict(self) -> dict[str, Any]:
        return {"names": list(self.names), "centres": self.centres.tolist(),
                "spread": self.spread.tolist(), "kept": list(self.kept),
                "mean": self.mean.tolist(), "std": self.std.tolist()}  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SensorScaling:
        arrays = {k: np.asarray(data[k], dtype=np.float64) for k in ("centres", "spread", "mean",
                                                                     "std")}  # fmt: skip
        return cls(tuple(data["names"]), kept=tuple(data["kept"]), **arrays)


@dataclass
class Windows:
    """Model inputs and targets: one window per example."""

    inputs: np.ndarray  # (M, W, K) float32 scaled readings
    rul: np.ndarray  # (M,) capped remaining useful life at the window's last reading
    failure: np.ndarray  # (M,) 1 when the entity fails within the horizon
    entity: np.ndarray  # (M,)

    def __len__(self) -> int:
        return len(self.inputs)

    def take(self, rows: np.ndarray) -> Windows:
        return Windows(self.inputs[rows], self.rul[rows], self.failure[rows], self.entity[rows])


class SeriesProcessor:
    """``data.series`` with the scaling fitted on its training rows; saved with the model
    as ``series_processor.json``."""

    def __init__(self, columns: SeriesColumns, scaling: SensorScaling | None = None,
                 reference: dict[str, dict[str, list[float]]] | None = None) -> None:  # fmt: skip
        self.columns = columns
        self.scaling = scaling
        # per kept sensor, its scaled training values' decile edges and the share of rows
        # between them: what serving measures drift against
        self.reference = reference or {}

    @property
    def fitted(self) -> bool:
        return self.scaling is not None

    @property
    def sensors(self) -> list[str]:
        """The kept sensors: the model's input features, in order."""
        return self._scaling().sensors

    @property
    def settings(self) -> list[str]:
        """The operating-setting columns a reading carries beside its sensors."""
        return list(SETTINGS) if self.columns.format == "cmapss" else list(self.columns.conditions)

    def _scaling(self) -> SensorScaling:
        if self.scaling is None:
            raise LmforgeError("the series processor is fitted on the training rows first")
        return self.scaling

    def fit(self, series: Series) -> None:
        c = self.columns
        decimals = CMAPSS_DECIMALS if c.format == "cmapss" else LONG_DECIMALS
        self.scaling = SensorScaling.fit(
            series.settings, series.values, series.names, by_condition=c.normalize == "condition",
            decimals=decimals, max_distinct=c.constant_values,
        )  # fmt: skip
        scaled = self.scaled(series)
        self.reference = {}
        for j, name in enumerate(self.sensors):
            edges = np.unique(np.quantile(scaled[:, j], np.linspace(0.1, 0.9, 9)))
            counts = np.bincount(np.searchsorted(edges, scaled[:, j], side="right"),
                                 minlength=len(edges) + 1)  # fmt: skip
            self.reference[name] = {"edges": edges.tolist(),
                                    "shares": (counts / len(scaled)).tolist()}  # fmt: skip

    def scaled(self, series: Series) -> np.ndarray:
        """``(N, K)`` float32: the kept sensors, standardised."""
        scaling = self._scaling()
        if list(series.names) != list(scaling.names):
            raise LmforgeError(f"{series.source}: sensors {series.names} differ from the "
                               f"{list(scaling.names)} the model was trained on")  # fmt: skip
        return scaling.transform(series.settings, series.values).astype(np.float32)

    def windows(self, series: Series, *, last_only: bool = False) -> Windows:
        """Every ``stride``-th window of each entity (counted back from its last reading),
        or only each entity's last one."""
        if series.rul is None:
            raise LmforgeError(f"{series.source}: no remaining useful life to train or score "
                               "with; name data.series.target")  # fmt: skip
        c = self.columns
        scaled = self.scaled(series)
        ends: list[int] = []  # each window's last row
        firsts: list[int] = []  # and its entity's first row
        for start, end in series.bounds():
            step = end - start if last_only else c.stride
            ends += range(end - 1, start - 1, -step)[::-1]
            firsts += [start] * (len(ends) - len(firsts))
        last, first = np.asarray(ends, dtype=np.int64), np.asarray(firsts, dtype=np.int64)
        rows = last[:, None] - c.window + 1 + np.arange(c.window)  # (M, W)
        rows = np.maximum(rows, first[:, None])  # a short history repeats its first reading
        rul = series.rul[last]
        return Windows(scaled[rows], np.minimum(rul, c.rul_cap).astype(np.float32),
                       (rul <= c.horizon).astype(np.int64), series.entity[last])  # fmt: skip

    def window_of(self, settings: np.ndarray, values: np.ndarray) -> np.ndarray:
        """One entity's latest readings (``(T, S)`` settings, ``(T, F)`` sensors; T >= 1) as
        a model input ``(W, K)`` float32: what serving scores."""
        return self.last_window(self.scaled_rows(settings, values))

    def last_window(self, scaled: np.ndarray) -> np.ndarray:
        """The last ``window`` of scaled readings ``(T, K)``, the first repeated in front
        when there are fewer: ``(W, K)``."""
        rows = np.maximum(np.arange(len(scaled) - self.columns.window, len(scaled)), 0)
        return scaled[rows]

    def scaled_rows(self, settings: np.ndarray, values: np.ndarray) -> np.ndarray:
        """``(T, K)`` float32: raw readings' kept sensors, standardised."""
        return self._scaling().transform(settings, values).astype(np.float32)

    def reading_arrays(self, readings: list[Any], where: str) -> tuple[np.ndarray, np.ndarray]:
        """``(settings (T, S), sensors (T, F))`` from readings sent as objects of the setting
        columns and kept sensors (other sensors are ignored, and left 0).

        Raises:
            LmforgeError: no readings, or a reading that misses a column or holds something
                other than a number there (the message names ``where[i].column``).
        """
        scaling = self._scaling()
        if not isinstance(readings, list) or not readings:
            raise LmforgeError(f"{where}: send a list of one or more readings")
        names = self.settings + self.sensors
        try:  # the fast path; a bad reading is looked for only when it fails
            rows = [[reading[name] for name in names] for reading in readings]
            good = all(type(value) in (int, float) for row in rows for value in row)
            table = np.array(rows, dtype=np.float64) if good else None
        except (KeyError, TypeError):
            table = None
        if table is None or not np.isfinite(table).all():
            raise LmforgeError(_first_bad_reading(readings, names, where))
        values = np.zeros((len(readings), len(scaling.names)))
        values[:, list(scaling.kept)] = table[:, len(self.settings) :]
        return table[:, : len(self.settings)], values

    def to_dict(self) -> dict[str, Any]:
        return {"columns": self.columns.model_dump(mode="json"),
                "scaling": self._scaling().to_dict(), "reference": self.reference}  # fmt: skip

    def save_pretrained(self, directory: str | Path) -> None:
        atomic_write_text(Path(directory) / SERIES_PROCESSOR_FILE,
                          json.dumps(self.to_dict(), indent=1) + "\n")  # fmt: skip

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> SeriesProcessor:
        path = Path(directory) / SERIES_PROCESSOR_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(SeriesColumns.model_validate(data["columns"]),
                       SensorScaling.from_dict(data["scaling"]), data.get("reference"))  # fmt: skip
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise LmforgeError(f"{path}: cannot read it ({err}); re-save the model") from None


def _first_bad_reading(readings: list[Any], names: list[str], where: str) -> str:
    """What is wrong with the first bad reading: ``where[i].name`` missing or no number."""
    for i, reading in enumerate(readings):
        if not isinstance(reading, dict):
            return f"{where}[{i}]: a reading is an object of {', '.join(names)}"
        for name in names:
            value = reading.get(name)
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if not number or not math.isfinite(value):  # type: ignore[arg-type]
                problem = "is missing" if value is None else f"is {value!r}, not a number"
                return f"{where}[{i}].{name} {problem}; every reading gives {', '.join(names)}"
    return f"{where}: unreadable readings"  # not reached: the fast path found a bad one
