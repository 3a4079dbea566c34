"""Prometheus metrics for ``GET /metrics``: latencies, queue, and token counts."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from lmforge.serve.requests import EngineStats

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# a store operation takes tenths of a millisecond idle, a few under load: fine buckets
# between 1 and 10 ms, since a quantile read from them is interpolated within one
_STORE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.0075,
                  0.01, 0.025, 0.05, 0.1, 1.0)  # fmt: skip
_HISTOGRAMS = {
    "queue": ("lmforge_request_queue_time_seconds", "Time a request waited for a batch slot."),
    "ttft": ("lmforge_time_to_first_token_seconds", "Time from request to first token."),
    "itl": ("lmforge_inter_token_latency_seconds", "Time between two tokens of a sequence."),
    "e2e": ("lmforge_e2e_request_latency_seconds", "Time from request to its last token."),
    "step": ("lmforge_decode_step_seconds", "Time of one batched decode step."),
}


class ServerMetrics:
    """A registry of its own (so several servers in one process do not collide)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.histograms = {
            key: Histogram(name, doc, buckets=_LATENCY_BUCKETS, registry=self.registry)
            for key, (name, doc) in _HISTOGRAMS.items()
        }
        self.running = Gauge(
            "lmforge_num_requests_running", "Sequences in the decode batch.", registry=self.registry
        )
        self.waiting = Gauge(
            "lmforge_num_requests_waiting", "Requests waiting for a slot.", registry=self.registry
        )
        self.prompt_tokens = Counter(
            "lmforge_prompt_tokens", "Prompt tokens admitted.", registry=self.registry
        )
        self.generation_tokens = Counter(
            "lmforge_generation_tokens", "Tokens generated.", registry=self.registry
        )
        self.store_seconds = Histogram(
            "lmforge_store_operation_seconds", "Time of one serve-store operation (a key "
            "check, loading or saving a session, a rate-limit take, ...).", ["operation"],
            buckets=_STORE_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self._counted = (0, 0)

    def watch_store(self, store: Any) -> None:
        """Record how long each of ``store``'s operations takes from now on."""
        store.observe = lambda operation, seconds: self.store_seconds.labels(operation).observe(
            seconds
        )

    def attach(self, stats: EngineStats) -> None:
        """Record the latencies ``stats`` observes from now on."""
        stats.observe = lambda name, seconds: self.histograms[name].observe(seconds)
        self._stats = stats

    def watch_scorers(self, scorers: Mapping[str, Any]) -> None:
        """Expose the served scoring models' counts and drift (tables and sensor windows)."""
        if scorers:
            self.registry.register(_ScoringCollector(scorers))

    def render(self) -> bytes:
        """The text exposition format, with gauges and counters read from the engine now."""
        stats = getattr(self, "_stats", None)
        if stats is not None:
            self.running.set(stats.running)
            self.waiting.set(stats.waiting)
            prompt, generated = self._counted
            self.prompt_tokens.inc(stats.prompt_tokens - prompt)
            self.generation_tokens.inc(stats.generation_tokens - generated)
            self._counted = (stats.prompt_tokens, stats.generation_tokens)
        return generate_latest(self.registry)


class _ScoringCollector(Collector):
    """Rows scored and flagged per scorer, and each feature's drift, read at scrape time."""

    def __init__(self, scorers: Mapping[str, Any]) -> None:
        self.scorers = scorers

    def collect(self) -> Iterator[Metric]:
        rows = CounterMetricFamily("lmforge_score_rows", "Rows scored.", labels=["scorer"])
        flagged = CounterMetricFamily("lmforge_score_flagged", "Rows scored at or above the "
                                      "model's threshold.", labels=["scorer"])  # fmt: skip
        batches = CounterMetricFamily("lmforge_score_batches", "Scoring passes (micro-batches).",
                                      labels=["scorer"])  # fmt: skip
        psi = GaugeMetricFamily("lmforge_score_feature_psi", "Population stability index of a "
                                "feature's scored values against its training data.",
                                labels=["scorer", "feature"])  # fmt: skip
        drifted = GaugeMetricFamily("lmforge_score_feature_drifted", "1 when the feature's PSI "
                                    "exceeds the drift threshold.",
                                    labels=["scorer", "feature"])  # fmt: skip
        for name, scorer in self.scorers.items():
            rows.add_metric([name], scorer.scored)
            flagged.add_metric([name], scorer.flagged)
            batches.add_metric([name], scorer.batches)
            report = scorer.drift()
            for feature, value in report["psi"].items():
                if value is not None:
                    psi.add_metric([name, feature], value)
                    drifted.add_metric([name, feature], float(feature in report["drifted"]))
        yield from (rows, flagged, batches, psi, drifted)
