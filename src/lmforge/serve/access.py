"""Who may call the API, and how often: bearer API keys and a per-key rate limit, both
kept in the serve store (so replicas that share a store share them)."""

from __future__ import annotations

import math
import time

from lmforge.serve.errors import ApiError
from lmforge.serve.store import ApiKey, ServeStore

# How long a key check is reused: a key created or revoked anywhere (another replica, the
# keys command) counts within it. It keeps the store off the path of most requests: a
# scoring request takes about a millisecond of the server's own time.
KEY_CHECK_SECONDS = 0.5


class RateLimiter:
    """A token bucket per caller: ``per_minute`` requests a minute, bursts up to that many.
    The buckets live in the store, so servers that share a store share the limit."""

    def __init__(self, store: ServeStore, per_minute: int) -> None:
        self.store = store
        self.per_minute = per_minute

    def check(self, caller: str) -> None:
        """Take one request from ``caller``'s bucket.

        Raises:
            ApiError: 429 with ``Retry-After`` when the bucket is empty.
        """
        if self.per_minute <= 0:
            return
        wait = self.store.take_request(caller, self.per_minute)
        if wait:
            seconds = math.ceil(wait)
            raise ApiError(
                429,
                f"rate limit of {self.per_minute} requests per minute reached; "
                f"retry in {seconds} s.",
                code="rate_limit_exceeded",
                headers={"Retry-After": str(seconds)},
            )


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
        self.limiter = RateLimiter(store, rate_limit)
        self._checked: dict[str, tuple[float, ApiKey | None]] = {}  # key -> (when, record)
        self._in_use = (-math.inf, False)  # (when, whether any key is active)

    def authorize(self, authorization: str | None, client: str) -> str | None:
        """The caller's key id (None when no keys are in use).

        Raises:
            ApiError: 401 without a valid key, 429 over the rate limit.
        """
        scheme, _, key = (authorization or "").partition(" ")
        key = key.strip() if scheme.lower() == "bearer" else ""
        record = self._check_key(key) if key else None  # a valid key: keys are in use
        if record is None and (self.require_keys or self._keys_in_use()):
            if not key:
                raise ApiError(
                    401,
                    "this server needs an API key: send 'Authorization: Bearer KEY' "
                    "(create one with `lmforge keys create NAME`).",
                    code="missing_api_key",
                )
            raise ApiError(401, "the API key is not valid (unknown or revoked)",
                           code="invalid_api_key")  # fmt: skip
        owner = record.id if record is not None else None
        self.limiter.check(owner or f"address:{client}")
        return owner

    def _check_key(self, key: str) -> ApiKey | None:
        """The store's record of ``key``, checked at most every ``KEY_CHECK_SECONDS``."""
        now = time.monotonic()
        checked, record = self._checked.get(key, (-math.inf, None))
        if now - checked > KEY_CHECK_SECONDS:
            if len(self._checked) >= 10_000:  # unknown keys sent at random cannot pile up
                self._checked.clear()
            record = self.store.check_key(key)
            self._checked[key] = (now, record)
        return record

    def _keys_in_use(self) -> bool:
        """Whether any key is active, checked at most every ``KEY_CHECK_SECONDS``."""
        now = time.monotonic()
        if now - self._in_use[0] > KEY_CHECK_SECONDS:
            self._in_use = (now, self.store.has_keys())
        return self._in_use[1]
