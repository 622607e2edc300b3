"""Group commit for LocalBus's write-ahead log, on a thread of its own.

Publishers on any thread's event loop hand their lines to one writer thread (once per turn
of their loop), which writes everything waiting, fsyncs once, tells the bus which batch is
durable (the bus appends it to its logs, in the order of the file) and settles each
publisher's future on the publisher's own loop. Nothing here waits for a turn of any
loop: with the writer as a task on the gateway's loop, a publish from the engine's thread
took five turns of that loop (1.4 s per tick at 5,000 chargers in
``bench/dr_latency.py``). The price, measured with ``bench/gateway_throughput.py`` on the
idle machine: ~91 µs of CPU per 1.6 MeterValues on the WAL against ~72 µs with the writer
as a task on the gateway's loop (appending on that loop instead, tried, did not change it).

Deadlines: every publish gives up at its own deadline with :class:`PublishError`, even
while the disk stalls (the writer thread is then stuck in ``fsync``, so it cannot be the
one to say so). Each loop keeps one timer, at the earliest deadline of its own waiting
publishes, never one per publish; lines of a publish that gave up may still reach the file
(at least once), but are never acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pipeline.bus.base import PublishError

__all__ = ["GroupCommit"]


@dataclass(eq=False, slots=True)
class _Waiter:
    lines: bytes
    payload: Any  # what the bus appends once durable
    done: asyncio.Future[None]
    deadline: float  # loop time: time.monotonic() on every asyncio loop
    limit: float  # the timeout it was given, for the message


@dataclass(slots=True)
class _LoopState:
    """One publishing loop's waiting publishes and its deadline timer (that loop only)."""

    waiting: set[_Waiter] = field(default_factory=set)
    timer: asyncio.TimerHandle | None = None
    timer_at: float = float("inf")
    #: publishes of this loop turn, handed to the writer together at its end
    turn: list[_Waiter] = field(default_factory=list)


class GroupCommit:
    """One writer thread: ``append(data)`` writes and fsyncs; ``durable(payloads)`` runs
    on that thread after each successful write, with the batch's payloads in file order."""

    def __init__(
        self,
        append: Callable[[bytes], None],
        durable: Callable[[list[Any]], None],
        *,
        name: str = "localbus-wal",
    ) -> None:
        self._append = append
        self._durable = durable
        self._name = name
        self._cv = threading.Condition()
        self._pending: list[_Waiter] = []
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._loops: dict[asyncio.AbstractEventLoop, _LoopState] = {}

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        """Write what is pending, then end the thread."""
        with self._cv:
            self._stopping = True
            self._cv.notify()
        if self._thread is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._thread.join)

    async def write(
        self, lines: bytes, payload: Any, limit: float, deadline: float | None = None
    ) -> None:
        """Return once ``lines`` are written and fsynced; :class:`PublishError` past
        ``limit`` seconds (or at ``deadline``, loop time, when the wait began earlier),
        or with the write's own error."""
        if self._stopping or not self.alive:
            raise PublishError("bus is stopped")
        loop = asyncio.get_running_loop()
        at = loop.time() + limit if deadline is None else deadline
        waiter = _Waiter(lines, payload, loop.create_future(), at, limit)
        state = self._loops.get(loop)
        if state is None:
            state = self._loops[loop] = _LoopState()
        # Handed over once per loop turn, not per publish: the readings that one turn of
        # the gateway's loop took in share one wake of the writer and one fsync (woken
        # per publish, the writer fsynced smaller batches: 106-112 µs of CPU per
        # MeterValues against 72-79 µs, bench/gateway_throughput.py).
        if not state.turn:
            loop.call_soon(self._hand_over, state)
        state.turn.append(waiter)
        state.waiting.add(waiter)
        if waiter.deadline < state.timer_at:
            self._arm(loop, state, waiter.deadline)
        try:
            await waiter.done
        except PublishError:
            raise
        except Exception as exc:  # the write or fsync failed: OSError, a closed file
            raise PublishError(f"write-ahead log failed: {exc}") from exc
        finally:
            state.waiting.discard(waiter)

    def _hand_over(self, state: _LoopState) -> None:
        batch, state.turn = state.turn, []
        with self._cv:
            if self._stopping and not self.alive:
                error: BaseException | None = PublishError("bus is stopped")
            else:
                error = None
                self._pending.extend(batch)
                self._cv.notify()
        if error is not None:
            _settle_all(batch, error)

    # -- deadlines (each on its own loop) --------------------------------------------------
    def _arm(self, loop: asyncio.AbstractEventLoop, state: _LoopState, at: float) -> None:
        if state.timer is not None:
            state.timer.cancel()
        state.timer_at = at
        state.timer = loop.call_at(at, self._expire, loop, state)

    def _expire(self, loop: asyncio.AbstractEventLoop, state: _LoopState) -> None:
        state.timer, state.timer_at = None, float("inf")
        now = loop.time()
        later = float("inf")
        for w in list(state.waiting):
            if w.done.done():
                state.waiting.discard(w)
            elif w.deadline <= now:
                w.done.set_exception(PublishError(f"not durable within {w.limit:g} s"))
                state.waiting.discard(w)
            else:
                later = min(later, w.deadline)
        if later < float("inf"):
            self._arm(loop, state, later)

    # -- the writer thread -----------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._pending and not self._stopping:
                    self._cv.wait()
                if not self._pending:
                    return
                batch, self._pending = self._pending, []
            error: BaseException | None = None
            try:
                self._append(b"".join(w.lines for w in batch))
                self._durable([w.payload for w in batch])
            except Exception as exc:
                error = exc
            self._settle(batch, error)

    @staticmethod
    def _settle(batch: list[_Waiter], error: BaseException | None) -> None:
        """Settle each future on its own loop: one callback per loop and batch."""
        by_loop: dict[asyncio.AbstractEventLoop, list[_Waiter]] = {}
        for w in batch:
            by_loop.setdefault(w.done.get_loop(), []).append(w)
        for loop, waiters in by_loop.items():
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits
                loop.call_soon_threadsafe(_settle_all, waiters, error)


def _settle_all(waiters: list[_Waiter], error: BaseException | None) -> None:
    for w in waiters:
        if not w.done.done():
            if error is None:
                w.done.set_result(None)
            else:
                w.done.set_exception(error)
