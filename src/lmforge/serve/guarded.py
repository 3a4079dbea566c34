"""Output moderation for a running generation.

Generated text is released to the client only after the whole answer so far has passed
the guard's output check (every ``CHECK_EVERY`` new characters, and at the end), and
the last ``HOLD_BACK`` characters wait for the next check, so personal data split
across two checks is still redacted before anyone sees it. A blocked answer stops
generating and ends with ``finish_reason: "content_filter"``, mid-stream if need be.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any

from lmforge.guard.policy import Guard
from lmforge.serve.requests import Event, Request

CHECK_EVERY = 48  # characters of new output between two checks
HOLD_BACK = 40  # longer than any PII pattern the guard redacts


class GuardedEvents:
    """Wraps the engine events of one response (same interface: iterate, ``cancel``).

    ``compute(fn, *args)`` runs the guard's classifier off the event loop (the server
    passes the engine's thread; see ``Engine.call``).
    """

    def __init__(
        self,
        events: Any,
        guard: Guard,
        compute: Callable[..., Awaitable[Any]] = asyncio.to_thread,
    ) -> None:
        self.events, self.guard, self.compute = events, guard, compute
        self.requests: list[Request] = events.requests

    def cancel(self) -> None:
        self.events.cancel()

    async def __aiter__(self) -> AsyncIterator[tuple[int, Event]]:
        raw: dict[int, str] = {}  # generated text per choice
        checked: dict[int, int] = {}  # raw characters covered by the last check
        released: dict[int, int] = {}  # characters of the redacted text already sent
        stopped: set[int] = set()
        async for index, event in self.events:
            if index in stopped:  # the engine's "cancelled" after a block
                continue
            text = raw[index] = raw.get(index, "") + event.text
            final = event.finish_reason is not None
            if not final and len(text) - checked.get(index, 0) < CHECK_EVERY:
                yield index, replace(event, text="")  # logprobs pass; text waits
                continue
            checked[index] = len(text)
            if await self.compute(self.guard.blocked, text, "output"):
                stopped.add(index)
                self.requests[index].cancelled.set()
                yield index, replace(event, text="", finish_reason="content_filter")
                continue
            visible = self.guard.redact(text)
            start = released.get(index, 0)
            end = len(visible) if final else max(start, len(visible) - HOLD_BACK)
            released[index] = end
            yield index, replace(event, text=visible[start:end])
