"""Prometheus metrics for ``GET /metrics``: latencies, queue, and token counts."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from lmforge.serve.requests import EngineStats

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
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
        self._counted = (0, 0)

    def attach(self, stats: EngineStats) -> None:
        """Record the latencies ``stats`` observes from now on."""
        stats.observe = lambda name, seconds: self.histograms[name].observe(seconds)
        self._stats = stats

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
