"""The micro-batching worker behind real-time scoring (tables and sensor windows).

Requests put their prepared inputs on a queue; one worker thread takes everything waiting
(up to ``max_batch`` rows), scores it in one pass, and hands each request its answers. It
never waits for a batch to fill: an idle server answers a lone request at once, and a busy
one batches whatever arrived while the previous batch ran (the continuous-batching idea
applied to scoring).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lmforge.errors import LmforgeError

STOPPED = "the server is shutting down; retry on another replica"


@dataclass
class _Envelope:
    """One request's prepared input, waiting for the worker."""

    job: Any
    rows: int
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop


class BatchWorker:
    """One thread running ``score_batch(jobs) -> answers`` (one answer per job) over every
    job waiting, after ``warm_up`` (run first, in that thread: compiled kernels stay with
    the thread that made them).

    Args:
        score_batch: scores a list of jobs in one pass; an exception fails them all.
        warm_up: run once in the worker thread before the first batch; the constructor
            returns when it has.
        max_batch: most rows (the ``rows`` each ``submit`` names) in one pass.
    """

    def __init__(
        self,
        name: str,
        score_batch: Callable[[list[Any]], list[Any]],
        *,
        warm_up: Callable[[], None] | None = None,
        max_batch: int = 256,
    ) -> None:
        self.score_batch = score_batch
        self.max_batch = max_batch
        self.closed = False
        self._queue: queue.SimpleQueue[_Envelope | None] = queue.SimpleQueue()
        warmed = threading.Event()
        self._thread = threading.Thread(target=self._work, args=(warm_up, warmed), name=name,
                                        daemon=True)  # fmt: skip
        self._thread.start()
        warmed.wait()

    @property
    def running(self) -> bool:
        """Whether the worker thread still runs (false once ``stop`` returned)."""
        return self._thread.is_alive()

    async def submit(self, job: Any, rows: int) -> Any:
        """``job``'s answer, once the worker has scored it.

        Raises:
            LmforgeError: the worker is stopping; whatever ``score_batch`` raised.
        """
        if self.closed:
            raise LmforgeError(STOPPED)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.put(_Envelope(job, rows, future, loop))
        return await future

    def stop(self) -> None:
        """Finish the batch in hand, fail whatever still waits, and end the worker."""
        self.closed = True
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _work(self, warm_up: Callable[[], None] | None, warmed: threading.Event) -> None:
        try:
            if warm_up is not None:
                warm_up()
        finally:
            warmed.set()
        while True:
            first = self._queue.get()
            if first is None:
                break
            batch, rows = [first], first.rows
            while rows < self.max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)  # stop after this batch
                    break
                batch.append(more)
                rows += more.rows
            try:
                answers = self.score_batch([envelope.job for envelope in batch])
            except Exception as error:  # every waiting request learns why
                for envelope in batch:
                    _settle(envelope, _fail, error)
                continue
            for envelope, answer in zip(batch, answers, strict=True):
                _settle(envelope, _succeed, answer)
        stopped = LmforgeError(STOPPED)
        while True:  # requests queued behind the stop: answered, never left waiting
            try:
                left = self._queue.get_nowait()
            except queue.Empty:
                return
            if left is not None:
                _settle(left, _fail, stopped)


def _settle(envelope: _Envelope, settle: Any, value: Any) -> None:
    """Settle the request's future on its event loop; a closed loop has no one waiting."""
    with contextlib.suppress(RuntimeError):
        envelope.loop.call_soon_threadsafe(settle, envelope.future, value)


def _succeed(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():  # the client may have gone away
        future.set_result(value)


def _fail(future: asyncio.Future[Any], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)
