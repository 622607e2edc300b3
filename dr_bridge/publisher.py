"""Publishing DR records: confirmed by the bus, retried with backoff, never dropped.

Records are first committed to the :class:`~dr_bridge.revisions.RevisionStore` (the
outbox) and only then published on ``grid.demand_response``, keyed by ``signal_id`` (the
topic is compacted; keying by zone would keep one signal per zone). A record is marked
confirmed once ``bus.publish`` resolved, i.e. it is durable. Whatever is not confirmed —
a publish that timed out, a crash between store and bus — is retried by :meth:`run`
with exponential backoff until it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from dr_bridge import metrics
from dr_bridge.errors import NotConfirmed
from dr_bridge.locks import KeyedLock
from dr_bridge.revisions import RevisionStore
from pipeline import topics
from pipeline.bus import Bus, PublishError
from pipeline.contracts import DemandResponseSignal, encode

log = logging.getLogger(__name__)


class Publisher:
    """Moves records from the store's outbox onto the bus."""

    def __init__(
        self,
        bus: Bus,
        store: RevisionStore,
        *,
        backoff_initial_s: float = 0.05,
        backoff_max_s: float = 5.0,
        sweep_interval_s: float = 1.0,
    ) -> None:
        self._bus = bus
        self._store = store
        self._backoff_initial = backoff_initial_s
        self._backoff_max = backoff_max_s
        self._sweep_interval = sweep_interval_s
        self._in_flight: dict[tuple[str, int], asyncio.Future[None]] = {}
        # One lock per signal: revisions of a signal reach the bus in modification order,
        # so a retried older revision can never land after (and shadow) a newer one.
        self._locks = KeyedLock()
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    async def start(self) -> None:
        """Start the retry loop; it first re-sends what an earlier run left unconfirmed."""
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="dr-publisher")

    @property
    def running(self) -> bool:
        """Whether the retry loop is alive (health)."""
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        """Stop retrying; unconfirmed records stay in the store for the next start."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        pending = list(self._in_flight.values())
        for fut in pending:
            fut.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def send(self, records: list[DemandResponseSignal], timeout: float | None) -> None:
        """Publish ``records`` (already in the store) and wait until all are confirmed.

        Raises :class:`NotConfirmed` after ``timeout`` s; the records stay queued and the
        retry loop keeps trying, so the caller may answer "not yet" and nothing is lost.
        """
        waits = [self._ensure(r) for r in records]
        try:
            async with asyncio.timeout(timeout):
                for w in waits:
                    await asyncio.shield(w)
        except TimeoutError as exc:
            raise NotConfirmed(f"{len(records)} record(s) not yet confirmed by the bus") from exc

    def _ensure(self, record: DemandResponseSignal) -> asyncio.Future[None]:
        key = (record.signal_id, record.modification)
        fut = self._in_flight.get(key)
        if fut is None:
            fut = asyncio.ensure_future(self._publish_until_confirmed(record))
            self._in_flight[key] = fut
            fut.add_done_callback(lambda _f: self._in_flight.pop(key, None))
        return fut

    async def _publish_until_confirmed(self, record: DemandResponseSignal) -> None:
        async with self._locks(record.signal_id):
            await self._publish_locked(record)

    async def _publish_locked(self, record: DemandResponseSignal) -> None:
        latest = self._store.latest(record.signal_id)
        if (
            latest is not None
            and latest.confirmed
            and latest.signal.modification > record.modification
        ):
            # A newer revision is already on the bus: publishing this one would shadow it.
            self._store.confirm(record.signal_id, record.modification)
            return
        started = time.perf_counter()
        delay = self._backoff_initial
        value = encode(record)
        while True:
            try:
                await self._bus.publish(topics.DEMAND_RESPONSE, record.signal_id, value)
                break
            except PublishError as exc:
                metrics.DR_PUBLISH_RETRIES.inc()
                log.warning(
                    "publish of %s/%d failed (%s); retrying in %.2f s",
                    record.signal_id,
                    record.modification,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._backoff_max)
        self._store.confirm(record.signal_id, record.modification)
        metrics.DR_SIGNALS.labels(record.source, record.signal_type).inc()
        metrics.DR_CONFIRM_SECONDS.observe(time.perf_counter() - started)

    async def run(self) -> None:
        """Re-send every unconfirmed record now and then, until stopped."""
        while True:
            for record in self._store.pending():
                self._ensure(record)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._sweep_interval):
                    await self._wake.wait()
            self._wake.clear()
