"""Real-time scoring of table rows: a tabular model behind a micro-batching worker
(``lmforge.serve.microbatch``), with a reason for every decision and a watch on drift.

``Scorer`` owns one tabular model (``lmforge.hub.tabular``). Its worker scores every row
waiting in one forward pass and explains the rows that asked.

An FT-Transformer's explanation pass (integrated gradients: a forward and a backward
pass over the row and its path) is compiled with ``torch.compile`` when the scorer starts,
for one row's path (rows go through it one by one), and checked against the eager pass on
two rows; where compiling fails (no C++ compiler, say) the scorer logs why and explains
eagerly.

Drift: every scored row is counted into the bins of the training distribution saved with
the model (deciles per numeric feature, one bin per category); ``drift()`` gives each
feature's population stability index (PSI) against training, and a feature whose PSI
exceeds ``drift_threshold`` is marked drifted. The counts cover every row scored since the
server started; PSI is reported once ``MIN_DRIFT_ROWS`` rows were scored.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lmforge.data.tabular import population_stability
from lmforge.hub.tabular import (
    Attributor,
    TabularModel,
    compiled_attributions,
    load_tabular,
    resolve_tabular,
)
from lmforge.serve.microbatch import BatchWorker

log = logging.getLogger(__name__)

MIN_DRIFT_ROWS = 100
MAX_BATCH_ROWS = 256
# Integrated-gradients steps per explained row: the cost is the steps' forward and backward
# passes. On 275 real test transactions (every fraud and 200 others), 8 midpoint steps
# picked the same top three features as a 256-step reference for 98.9% of rows (6 steps:
# 98.5%, 4: 94.9%), 8% apart in L1; Gauss-Legendre nodes did no better (the path crosses
# saturated attention and GELU regions, not a smooth polynomial).
SERVED_IG_STEPS = 8


@dataclass
class _Job:
    """One request's rows, waiting for the worker."""

    numeric: np.ndarray  # (N, Fn) scaled
    codes: np.ndarray  # (N, Fc)
    raw: np.ndarray  # (N, Fn) as sent, for drift and the reasons
    explain: bool
    top_k: int


@dataclass
class DriftCounts:
    """Rows scored per bin of each feature's training distribution."""

    counts: dict[str, np.ndarray] = field(default_factory=dict)
    rows: int = 0


class Scorer:
    """A tabular model served for real-time scoring (see the module docstring).

    Args:
        ref: a tabular model reference (a run, a registry version, a folder).
        drift_threshold: PSI above which a feature counts as drifted.
        max_batch: most rows scored in one pass.
        compile: compile an FT-Transformer's explanation pass at start (see the module
            docstring); 10-20 s once, then about a third of the time per row.

    Raises:
        LmforgeError: ``ref`` is not a tabular model.
    """

    def __init__(self, ref: str, *, drift_threshold: float = 0.2,
                 max_batch: int = MAX_BATCH_ROWS, compile: bool = True) -> None:  # fmt: skip
        self.ref = ref
        self.model: TabularModel = load_tabular(resolve_tabular(ref).path)
        self._attributor: Attributor | None = None  # the compiled pass, once warmed up
        self.processor = self.model.processor
        self.drift_threshold = drift_threshold
        self.scored = 0
        self.flagged = 0
        self.batches = 0
        reference = self.processor.reference
        self._drift = DriftCounts({name: np.zeros(len(bins["shares"]), dtype=np.int64)
                                   for name, bins in reference.items()})  # fmt: skip
        self._edges = {name: np.asarray(reference[name]["edges"], dtype=np.float64)
                       for name in self.processor.numeric if name in reference}  # fmt: skip
        self._lock = threading.Lock()
        self._worker = BatchWorker("lmforge-scorer", self._score_batch, max_batch=max_batch,
                                   warm_up=self._warm_up if compile else None)  # fmt: skip

    @property
    def compiled(self) -> bool:
        """Whether rows are explained through the compiled pass."""
        return self._attributor is not None

    @property
    def kind(self) -> str:
        return self.model.kind

    @property
    def features(self) -> list[str]:
        return self.processor.features

    def stop(self) -> None:
        """Finish the batch in hand, fail whatever still waits, and end the worker."""
        self._worker.stop()

    async def score(
        self, rows: list[dict[str, Any]], *, explain: bool = True, top_k: int = 3
    ) -> list[dict[str, Any]]:
        """Each row's score, decision and (with ``explain``) its ``top_k`` reasons.

        Raises:
            LmforgeError: a row misses a feature or holds a value of the wrong type (the
                message names ``input[i].feature``).
        """
        table = self.processor.rows_table(rows, where="input")
        raw = self.processor.raw_numeric(table)
        numeric, codes = self.processor.scale(raw), self.processor.category_codes(table)
        answer: list[dict[str, Any]] = await self._worker.submit(
            _Job(numeric, codes, raw, explain, top_k), len(numeric))  # fmt: skip
        return answer

    # --- the worker -------------------------------------------------------------------

    def _warm_up(self) -> None:
        """Compile the FT-Transformer's explanation pass for one row's path, in the thread
        that will run it, and keep it only if it agrees with the eager pass on two random
        rows."""
        network = self.model.network
        if network is None:
            return
        rng = np.random.default_rng(0)
        numeric = rng.standard_normal((2, len(self.processor.numeric))).astype(np.float32)
        codes = np.ones((2, len(self.processor.columns.categorical)), dtype=np.int64)
        self._attributor = compiled_attributions(network)
        try:
            fast = self._explain(numeric, codes)
        except Exception as error:  # inductor needs a C++ compiler, among other things
            problem: str | None = f"cannot compile it ({type(error).__name__}: {error})"
        else:
            eager = self.model.explain(numeric, codes, steps=SERVED_IG_STEPS)
            agree = all(np.allclose(a, b, rtol=1e-3, atol=1e-4)
                        for a, b in zip(fast, eager, strict=True))  # fmt: skip
            problem = None if agree else "the compiled pass disagrees with the eager one"
        if problem is not None:
            self._attributor = None
            log.warning("scorer %s: %s; explaining eagerly", self.ref, problem.splitlines()[0])

    def _explain(self, numeric: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(probabilities, contributions)`` of the rows; through the compiled pass row by
        row: it was compiled for one row's shape, so nothing recompiles, and a row costs
        about the same alone as in a batch (~2.1 ms against ~2.0 ms for a 64-wide model)."""
        if self._attributor is None:
            return self.model.explain(numeric, codes, steps=SERVED_IG_STEPS)
        parts = [self.model.explain(numeric[i : i + 1], codes[i : i + 1], steps=SERVED_IG_STEPS,
                                    compiled=self._attributor)
                 for i in range(len(numeric))]  # fmt: skip
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def _score_batch(self, jobs: list[_Job]) -> list[list[dict[str, Any]]]:
        """One pass over every waiting row; contributions only for the rows that asked."""
        numeric = np.concatenate([job.numeric for job in jobs])
        codes = np.concatenate([job.codes for job in jobs])
        wanted = np.concatenate([np.full(len(job.numeric), job.explain) for job in jobs])
        scores = np.zeros(len(numeric))
        contributions = np.zeros((len(numeric), len(self.features)))
        if wanted.any():  # scored and explained in one pass
            scores[wanted], contributions[wanted] = self._explain(numeric[wanted], codes[wanted])
        if not wanted.all():
            scores[~wanted] = self.model.probabilities(numeric[~wanted], codes[~wanted])
        decision = self.processor.decision
        flagged = scores >= decision.threshold
        self._count(np.concatenate([job.raw for job in jobs]), codes, int(flagged.sum()))
        answers, start = [], 0
        negative, positive = self.processor.classes
        for job in jobs:
            rows = []
            for i in range(start, start + len(job.numeric)):
                row: dict[str, Any] = {
                    "score": float(scores[i]),
                    "flagged": bool(flagged[i]),
                    "label": positive if flagged[i] else negative,
                    "threshold": decision.threshold,
                }
                if job.explain:
                    row["reasons"] = self._reasons(job, i - start, contributions[i])
                rows.append(row)
            answers.append(rows)
            start += len(job.numeric)
        self.batches += 1
        return answers

    def _reasons(self, job: _Job, index: int, contributions: np.ndarray) -> list[dict[str, Any]]:
        """The ``top_k`` features with the largest effect on the row's log-odds."""
        order = np.argsort(-np.abs(contributions), kind="stable")[: job.top_k]
        numeric = self.processor.numeric
        reasons = []
        for j in order:
            name = self.features[j]
            value: Any = float(job.raw[index, j]) if j < len(numeric) else (
                self._category(name, int(job.codes[index, j - len(numeric)])))  # fmt: skip
            reasons.append({"feature": name, "value": value,
                            "contribution": float(contributions[j])})  # fmt: skip
        return reasons

    def _category(self, name: str, code: int) -> str | None:
        return self.processor.categories[name][code - 1] if code > 0 else None

    # --- drift ------------------------------------------------------------------------

    def _count(self, raw: np.ndarray, codes: np.ndarray, flagged: int) -> None:
        processor = self.processor
        with self._lock:
            self.scored += len(raw)
            self.flagged += flagged
            self._drift.rows += len(raw)
            for j, name in enumerate(processor.numeric):
                if name not in self._drift.counts:
                    continue  # a model saved without its training bins: no drift for it
                edges = self._edges[name]
                bins = np.searchsorted(edges, raw[:, j], side="right")
                self._drift.counts[name] += np.bincount(bins, minlength=len(edges) + 1)
            for j, name in enumerate(processor.columns.categorical):
                if name not in self._drift.counts:
                    continue
                size = len(processor.categories[name])
                bins = np.where(codes[:, j] > 0, codes[:, j] - 1, size)  # unseen: the last bin
                self._drift.counts[name] += np.bincount(bins, minlength=size + 1)

    def drift(self) -> dict[str, Any]:
        """Each feature's PSI against training (None until ``MIN_DRIFT_ROWS`` rows), and
        which features exceed ``drift_threshold``."""
        with self._lock:
            rows = self._drift.rows
            counts = {name: values.copy() for name, values in self._drift.counts.items()}
        psi: dict[str, float | None] = {}
        for name, values in counts.items():
            expected = self.processor.reference[name]["shares"]
            psi[name] = population_stability(expected, values / rows) if (
                rows >= MIN_DRIFT_ROWS) else None  # fmt: skip
        drifted = [name for name, value in psi.items()
                   if value is not None and value > self.drift_threshold]  # fmt: skip
        return {"rows": rows, "threshold": self.drift_threshold, "psi": psi, "drifted": drifted}
