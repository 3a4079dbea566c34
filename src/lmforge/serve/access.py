"""Who may call the API, and how often: bearer API keys and a per-key rate limit."""

from __future__ import annotations

import math
import threading
import time

from lmforge.serve.errors import ApiError
from lmforge.serve.store import ServeStore


class RateLimiter:
    """A token bucket per caller: ``per_minute`` requests a minute, bursts up to that many."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._buckets: dict[str, tuple[float, float]] = {}  # caller -> (tokens, updated)
        self._lock = threading.Lock()

    def check(self, caller: str) -> None:
        """Take one request from ``caller``'s bucket.

        Raises:
            ApiError: 429 with ``Retry-After`` when the bucket is empty.
        """
        if self.per_minute <= 0:
            return
        rate = self.per_minute / 60.0  # tokens per second
        now = time.monotonic()
        with self._lock:
            tokens, updated = self._buckets.get(caller, (float(self.per_minute), now))
            tokens = min(float(self.per_minute), tokens + (now - updated) * rate)
            if tokens < 1.0:
                self._buckets[caller] = (tokens, now)
                wait = math.ceil((1.0 - tokens) / rate)
                raise ApiError(
                    429,
                    f"rate limit of {self.per_minute} requests per minute reached; "
                    f"retry in {wait} s.",
                    code="rate_limit_exceeded",
                    headers={"Retry-After": str(wait)},
                )
            self._buckets[caller] = (tokens - 1.0, now)


class AccessControl:
    """Checks ``Authorization: Bearer KEY`` when keys exist (or are required).

    Args:
        store: where keys are kept.
        require_keys: demand a key even while none has been created (then nothing passes
            until ``lmforge keys create``).
        rate_limit: requests per minute per key (per client address without keys); 0 is off.
    """

    def __init__(self, store: ServeStore, *, require_keys: bool, rate_limit: int) -> None:
        self.store = store
        self.require_keys = require_keys
        self.limiter = RateLimiter(rate_limit)

    def authorize(self, authorization: str | None, client: str) -> str | None:
        """The caller's key id (None when no keys are in use).

        Raises:
            ApiError: 401 without a valid key, 429 over the rate limit.
        """
        owner = None
        if self.require_keys or self.store.has_keys():
            scheme, _, key = (authorization or "").partition(" ")
            if scheme.lower() != "bearer" or not key.strip():
                raise ApiError(
                    401,
                    "this server needs an API key: send 'Authorization: Bearer KEY' "
                    "(create one with `lmforge keys create NAME`).",
                    code="missing_api_key",
                )
            record = self.store.check_key(key.strip())
            if record is None:
                raise ApiError(401, "the API key is not valid (unknown or revoked)",
                               code="invalid_api_key")  # fmt: skip
            owner = record.id
        self.limiter.check(owner or f"address:{client}")
        return owner
