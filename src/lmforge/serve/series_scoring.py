"""Real-time remaining-useful-life scoring of sensor windows, with the sensors behind each
prediction, a per-unit window cache for streaming clients, and a watch on drift.

``SeriesScorer`` owns one RUL model (``lmforge.hub.timeseries``) behind the micro-batching
worker (``lmforge.serve.microbatch``). Each item of a request is one unit:

- ``{"unit": "17", "readings": [...]}``: a window of readings (objects of the operating
  settings and sensors), oldest first; the last ``window`` are scored (fewer: the first is
  repeated in front, as in training). With a ``unit``, they also become that unit's cached
  window.
- ``{"unit": "17", "reading": {...}}``: one new reading, appended to the unit's cached
  window (a unit not cached starts one), which is scored.

The cache (``WindowCache``) keeps at most ``window`` readings per unit and at most
``cache_units`` units; the unit updated longest ago goes first, and a unit not updated for
``cache_seconds`` expires.

A Transformer's explanation pass (integrated gradients of the RUL over time steps and
sensors) is compiled at start for one window, as the tabular scorer's is, and falls back
to eager with a warning when compiling fails. Drift: every new reading's scaled sensors are
counted into the deciles of the training rows saved with the model; ``drift()`` gives each
sensor's population stability index.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from lmforge.data.tabular import population_stability
from lmforge.errors import LmforgeError
from lmforge.hub.timeseries import (
    Attributor,
    SeriesModel,
    compiled_attributions,
    load_series_model,
    resolve_series,
)
from lmforge.serve.microbatch import BatchWorker
from lmforge.serve.scoring import MAX_BATCH_ROWS, MIN_DRIFT_ROWS, SERVED_IG_STEPS

log = logging.getLogger(__name__)

CACHE_UNITS = 10_000
CACHE_SECONDS = 3600.0


class WindowCache:
    """Each unit's latest (scaled) readings, at most ``window`` of them (see the module
    docstring)."""

    def __init__(self, window: int, *, units: int = CACHE_UNITS, seconds: float = CACHE_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.window, self.units, self.seconds, self.clock = window, units, seconds, clock
        self._units: OrderedDict[str, tuple[deque[np.ndarray], float]] = OrderedDict()
        self.expired = 0
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._units)

    def __contains__(self, unit: str) -> bool:
        self._expire()
        return unit in self._units

    def update(self, unit: str, rows: np.ndarray, *, replace: bool) -> np.ndarray:
        """The unit's cached rows after adding ``rows`` (``(T, C)``; ``replace`` drops what
        was cached first), oldest first: ``(min(total, window), C)``."""
        self._expire()
        kept = None if replace else self._units.pop(unit, None)
        readings = kept[0] if kept is not None else deque(maxlen=self.window)
        readings.extend(rows)
        self._units[unit] = (readings, self.clock())
        self._units.move_to_end(unit)
        while len(self._units) > self.units:
            self._units.popitem(last=False)
            self.evicted += 1
        return np.stack(readings)

    def _expire(self) -> None:
        oldest = self.clock() - self.seconds
        while self._units and next(iter(self._units.values()))[1] < oldest:
            self._units.popitem(last=False)
            self.expired += 1


@dataclass
class _Job:
    """One request's windows, waiting for the worker."""

    units: list[str | None]
    windows: np.ndarray  # (N, W, K) scaled
    latest: np.ndarray  # (N, F) each unit's latest raw sensor values, for the reasons
    readings: list[int]  # real readings in each window
    explain: bool
    top_k: int


class SeriesScorer:
    """A RUL model served for real-time scoring (see the module docstring).

    Args:
        ref: a RUL model reference (a run, a registry version, a folder).
        drift_threshold: PSI above which a sensor counts as drifted.
        max_batch: most windows scored in one pass.
        compile: compile a Transformer's explanation pass at start.
        cache_units, cache_seconds: the streaming window cache's bounds.

    Raises:
        LmforgeError: ``ref`` is not a RUL model.
    """

    def __init__(self, ref: str, *, drift_threshold: float = 0.2,
                 max_batch: int = MAX_BATCH_ROWS, compile: bool = True,
                 cache_units: int = CACHE_UNITS,
                 cache_seconds: float = CACHE_SECONDS) -> None:  # fmt: skip
        self.ref = ref
        self.model: SeriesModel = load_series_model(resolve_series(ref).path)
        self.processor = self.model.processor
        self.columns = self.processor.columns
        self.cache = WindowCache(self.columns.window, units=cache_units, seconds=cache_seconds)
        self.drift_threshold = drift_threshold
        self.scored = 0
        self.flagged = 0
        self.batches = 0
        self._readings = 0  # new readings counted for drift
        self._counts = {name: np.zeros(len(bins["shares"]), dtype=np.int64)
                        for name, bins in self.processor.reference.items()}  # fmt: skip
        self._edges = {name: np.asarray(bins["edges"])
                       for name, bins in self.processor.reference.items()}  # fmt: skip
        self._lock = threading.Lock()
        self._attributor: Attributor | None = None
        self._worker = BatchWorker("lmforge-series-scorer", self._score_batch,
                                   max_batch=max_batch,
                                   warm_up=self._warm_up if compile else None)  # fmt: skip

    @property
    def compiled(self) -> bool:
        """Whether windows are explained through the compiled pass."""
        return self._attributor is not None

    @property
    def kind(self) -> str:
        return self.model.kind

    @property
    def features(self) -> list[str]:
        """What a reading gives: the operating settings, then the kept sensors."""
        return self.processor.settings + self.processor.sensors

    def stop(self) -> None:
        """Finish the batch in hand, fail whatever still waits, and end the worker."""
        self._worker.stop()

    async def score(
        self, items: list[dict[str, Any]], *, explain: bool = True, top_k: int = 3
    ) -> list[dict[str, Any]]:
        """Each unit's RUL, failure probability (Transformer only), whether it is flagged
        (failure within the horizon predicted) and, with ``explain``, the ``top_k`` sensors
        that moved the RUL most.

        Raises:
            LmforgeError: an item without ``readings`` or ``reading``, a ``reading`` without
                a ``unit``, or a bad reading (the message names ``input[i]...``).
        """
        units, windows, latest, counts, new = [], [], [], [], []
        for i, item in enumerate(items):
            unit, settings, values = self._unit_readings(item, f"input[{i}]")
            scaled = self.processor.scaled_rows(settings, values)  # (T, K)
            new.append(scaled)
            if unit is not None:  # the cache keeps scaled readings: scaled once, when sent
                scaled = self.cache.update(unit, scaled, replace="readings" in item)
            units.append(unit)
            windows.append(self.processor.last_window(scaled))
            latest.append(values[-1])
            counts.append(min(len(scaled), self.columns.window))
        self._count(np.concatenate(new))
        job = _Job(units, np.stack(windows), np.stack(latest), counts, explain, top_k)
        answer: list[dict[str, Any]] = await self._worker.submit(job, len(units))
        return answer

    def _unit_readings(self, item: Any, where: str) -> tuple[str | None, np.ndarray, np.ndarray]:
        if not isinstance(item, dict) or ("readings" in item) == ("reading" in item):
            raise LmforgeError(f"{where}: give a unit's 'readings' (a window, oldest first) "
                               "or one new 'reading' for a unit the server keeps a window "
                               "of")  # fmt: skip
        unit = item.get("unit")
        if unit is not None and not isinstance(unit, str | int):
            raise LmforgeError(f"{where}.unit: {unit!r}; a unit id is a string or a number")
        if "reading" in item and unit is None:
            raise LmforgeError(f"{where}.unit: one new 'reading' needs the unit whose window "
                               "it extends")  # fmt: skip
        if "reading" in item:
            settings, values = self.processor.reading_arrays([item["reading"]], f"{where}.reading")
        else:
            settings, values = self.processor.reading_arrays(item["readings"], f"{where}.readings")
        return (None if unit is None else str(unit)), settings, values

    # --- the worker -------------------------------------------------------------------

    def _warm_up(self) -> None:
        """Compile the Transformer's explanation pass for one window, in the worker thread,
        and keep it only if it agrees with the eager pass on two random windows."""
        network = self.model.network
        if network is None:
            return
        shape = (self.columns.window, len(self.processor.sensors))
        windows = np.random.default_rng(0).standard_normal((2, *shape)).astype(np.float32)
        self._attributor = compiled_attributions(network)
        try:
            fast = self._explain(windows)
        except Exception as error:  # inductor needs a C++ compiler, among other things
            problem: str | None = f"cannot compile it ({type(error).__name__}: {error})"
        else:
            eager = self.model.explain(windows, steps=SERVED_IG_STEPS)
            agree = all(np.allclose(a, b, rtol=1e-3, atol=1e-3)  # type: ignore[arg-type]
                        for a, b in zip(fast, eager, strict=True))  # fmt: skip
            problem = None if agree else "the compiled pass disagrees with the eager one"
        if problem is not None:
            self._attributor = None
            log.warning("scorer %s: %s; explaining eagerly", self.ref, problem.splitlines()[0])

    def _explain(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """``SeriesModel.explain``, through the compiled pass window by window (it was
        compiled for one window's shape, so nothing recompiles)."""
        if self._attributor is None:
            return self.model.explain(windows, steps=SERVED_IG_STEPS)
        parts = [self.model.explain(windows[i : i + 1], steps=SERVED_IG_STEPS,
                                    compiled=self._attributor)
                 for i in range(len(windows))]  # fmt: skip
        probability = [p[1] for p in parts]
        return (np.concatenate([p[0] for p in parts]),
                None if probability[0] is None else np.concatenate(probability),  # type: ignore[arg-type]
                np.concatenate([p[2] for p in parts]))  # fmt: skip

    def _score_batch(self, jobs: list[_Job]) -> list[list[dict[str, Any]]]:
        """One pass over every waiting window; reasons only for the requests that asked."""
        windows = np.concatenate([job.windows for job in jobs])
        wanted = np.concatenate([np.full(len(job.units), job.explain) for job in jobs])
        rul = np.zeros(len(windows))
        probability = np.full(len(windows), np.nan)
        attributions: np.ndarray | None = None
        if wanted.any():
            rul[wanted], p, attributions = self._explain(windows[wanted])
            if p is not None:
                probability[wanted] = p
        if not wanted.all():
            rul[~wanted], p = self.model.predict(windows[~wanted])
            if p is not None:
                probability[~wanted] = p
        horizon = self.columns.horizon
        has_probability = self.model.network is not None
        flagged = probability >= 0.5 if has_probability else rul <= horizon
        explained = iter(range(int(wanted.sum())))
        answers, start = [], 0
        for job in jobs:
            rows = []
            for i in range(start, start + len(job.units)):
                local = i - start
                row: dict[str, Any] = {"unit": job.units[local], "rul": float(rul[i]),
                                       "flagged": bool(flagged[i]), "horizon": horizon,
                                       "readings": job.readings[local]}  # fmt: skip
                if has_probability:
                    row["failure_probability"] = float(probability[i])
                if job.explain and attributions is not None:
                    row["reasons"] = self._reasons(job, local, attributions[next(explained)])
                rows.append(row)
            answers.append(rows)
            start += len(job.units)
        with self._lock:
            self.scored += len(windows)
            self.flagged += int(flagged.sum())
            self.batches += 1
        return answers

    def _reasons(self, job: _Job, index: int, attributions: np.ndarray) -> list[dict[str, Any]]:
        """The ``top_k`` sensors whose readings moved the RUL most (summed over the window),
        with their latest raw value and the time step where they mattered most (0: the
        latest reading, -1 the one before...; null when the model sees the window only
        through statistics)."""
        per_sensor = attributions.sum(0)  # (K,) cycles of RUL
        order = np.argsort(-np.abs(per_sensor), kind="stable")[: job.top_k]
        scaling = self.processor.scaling
        assert scaling is not None
        steps = attributions.shape[0]
        reasons = []
        for k in order:
            peak = int(np.argmax(np.abs(attributions[:, k]))) - (steps - 1) if steps > 1 else None
            reasons.append({"sensor": scaling.sensors[k], "contribution": float(per_sensor[k]),
                            "value": float(job.latest[index, scaling.kept[k]]),
                            "most_at": peak})  # fmt: skip
        return reasons

    # --- drift ------------------------------------------------------------------------

    def _count(self, scaled: np.ndarray) -> None:
        with self._lock:
            self._readings += len(scaled)
            for j, name in enumerate(self.processor.sensors):
                if name in self._counts:
                    edges = self._edges[name]
                    bins = np.searchsorted(edges, scaled[:, j], side="right")
                    self._counts[name] += np.bincount(bins, minlength=len(edges) + 1)

    def drift(self) -> dict[str, Any]:
        """Each sensor's PSI against training (None until ``MIN_DRIFT_ROWS`` readings), and
        which sensors exceed ``drift_threshold``; the cache's size beside them."""
        with self._lock:
            rows = self._readings
            counts = {name: values.copy() for name, values in self._counts.items()}
        psi: dict[str, float | None] = {
            name: population_stability(self.processor.reference[name]["shares"], values / rows)
            if rows >= MIN_DRIFT_ROWS else None
            for name, values in counts.items()
        }  # fmt: skip
        drifted = [name for name, value in psi.items()
                   if value is not None and value > self.drift_threshold]  # fmt: skip
        return {"rows": rows, "threshold": self.drift_threshold, "psi": psi, "drifted": drifted,
                "cached_units": len(self.cache)}  # fmt: skip
