"""One connected station as the application sees it: handlers' common ground, no socket.

:class:`Station` is what each version's handler class (``v16.handlers.StationV16`` ...)
extends: the call dispatch (:meth:`Station.handle`: snake_case keyword arguments in, the
typed result's JSON object or a :class:`Refusal` out), durable publishing, sessions, boot
throttling and the capability query. Bytes never pass through here: the connection
adapter (:mod:`ocpp_gateway.connection`) feeds the protocol and calls :meth:`handle`;
our own requests go out through the :class:`Link` it binds.

Readings are acknowledged only when durable: :meth:`Station.publish_durable` raises the
library's ``InternalError`` (so the charger gets a CallError and retries) when the bus
does not confirm within ``ack_timeout``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from ocpp.exceptions import InternalError, OCPPError, PropertyConstraintViolationError
from websockets.exceptions import ConnectionClosed

from ocpp_gateway.budget import Budget
from ocpp_gateway.clock import now_utc
from ocpp_gateway.config import GatewayConfig
from ocpp_gateway.dialect import Dialect
from ocpp_gateway.errors import ChargerRefused, StationOffline
from ocpp_gateway.logsafe import Allowance, Warnings
from ocpp_gateway.metrics import GatewayMetrics
from ocpp_gateway.normalise import Bounds, NormaliseError
from ocpp_gateway.profiles import UNKNOWN, Capabilities
from ocpp_gateway.routing import Routes, result_payload, routes_of, to_snake
from ocpp_gateway.sessions import SessionBook, Sessions
from pipeline import topics
from pipeline.bus import Bus, BusError, Message
from pipeline.contracts import (
    INT32_MAX,
    ContractError,
    MeterValue,
    StationStatus,
    StationZone,
    decode,
    encode,
)

__all__ = [
    "BootThrottle",
    "Link",
    "Reconciler",
    "Refusal",
    "Station",
    "StationContext",
    "check_id",
]

log = logging.getLogger("ocpp_gateway")


def check_id(name: str, value: int) -> int:
    """A connector/EVSE id within the contract's int32 >= 0, else the CallError to send.

    The schemas allow any integer; the engine's column is an int32, and one id beyond it
    once failed a whole batch of other stations' readings.
    """
    if not 0 <= value <= INT32_MAX:
        raise PropertyConstraintViolationError(description=f"{name} {value} is outside 0..2^31-1")
    return value


class BootThrottle:
    """Token bucket for BootNotifications: at most ``rate`` accepted per second.

    After a gateway restart every charger boots at once; answering the surplus ``Pending``
    with a spread-out retry interval turns the storm into a queue the chargers keep
    themselves (the spec's intended use of Pending).
    """

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.tokens = rate
        self.clock = clock
        self.last = clock()

    def admit(self) -> bool:
        now = self.clock()
        self.tokens = min(self.rate, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class Link(Protocol):
    """What a station needs of its connection: our calls, and ending it."""

    async def request(self, action: str, payload: dict[str, Any]) -> dict[str, Any]: ...

    async def close(self, code: int, reason: str) -> None: ...


class Reconciler(Protocol):
    """Command delivery as a station sees it (so this module does not import it)."""

    async def reconcile(self, station: Any) -> None: ...


class Registry(Protocol):
    def zone(self, station_id: str) -> StationZone | None: ...


@dataclass(slots=True)
class StationContext:
    """What a station connection needs from the gateway (injected, so tests can build one)."""

    bus: Bus
    config: GatewayConfig
    metrics: GatewayMetrics
    registry: Registry
    commands: Reconciler | None = None
    #: each station's transactions (connector/EVSE -> running one, the latest ended):
    #: kept across reconnects and, through ``ocpp.sessions``, across restarts
    sessions: SessionBook = field(default_factory=SessionBook)
    boots: BootThrottle | None = None
    #: station -> its budget, kept across reconnects: reconnecting must not refill it
    budgets: dict[str, Budget] = field(default_factory=dict)
    #: the warning lines all stations together may log (see ocpp_gateway.logsafe)
    warnings: Allowance = field(default_factory=lambda: Allowance(log))

    def budget(self, station_id: str) -> Budget:
        """The station's budget (a new, full one the first time)."""
        budget = self.budgets.pop(station_id, None)
        if budget is None:
            c = self.config
            budget = Budget(
                c.budget_msgs_per_s,
                c.budget_msgs_burst,
                c.budget_bytes_per_s,
                max(c.budget_bytes_burst, c.max_size),
                c.budget_disconnect_s,
            )
        self.budgets[station_id] = budget  # re-inserted: least recently connected first
        while len(self.budgets) > _MAX_BUDGETS:  # ids of unknown stations are unbounded
            del self.budgets[next(iter(self.budgets))]
        return budget


_MAX_BUDGETS = 100_000


@dataclass(frozen=True, slots=True)
class Refusal:
    """A call answered with a CallError ``code`` instead of a result."""

    code: str
    description: str


class Station:
    """Base of each version's handler class; one instance per connection."""

    routes: ClassVar[Routes]
    _handled: ClassVar[frozenset[str]] = frozenset()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.routes = routes_of(cls)
        cls._handled = frozenset(cls.routes.on)

    def __init__(self, station_id: str, dialect: Dialect, ctx: StationContext) -> None:
        self.id = station_id
        self.dialect = dialect
        self.version = dialect.name
        self.ctx = ctx
        self.link: Link | None = None
        self.booted = False
        self.reconciled = False
        self.busy = 0  # calls being handled now (graceful shutdown waits for 0)
        self._background_tasks: set[asyncio.Task[Any]] = set()
        self._caps: asyncio.Task[Capabilities] | None = None
        self._per_action: dict[str, tuple[Any, Any]] = {}  # action -> (counter, histogram)
        self.budget = ctx.budget(station_id)
        #: this station's warnings: escaped, and at most a few per 10 s with a count
        self.warn = Warnings(log, f"station {station_id}: ", shared=ctx.warnings)

    @classmethod
    def handled(cls) -> frozenset[str]:
        """The actions this class has an ``@on`` handler for (one set per class, not
        per connection)."""
        return cls._handled

    # -- calls from the charger ------------------------------------------------------------
    async def handle(self, action: str, payload: dict[str, Any]) -> dict[str, Any] | Refusal:
        """Run the handler of ``action``; the answer's JSON object or the CallError.

        ``action`` must be one of :meth:`handled` (the protocol refuses the others).
        """
        metrics = self._per_action.get(action)
        if metrics is None:  # labels() is slow: one lookup per action and connection
            metrics = self._per_action[action] = (
                self.ctx.metrics.messages.labels(action, self.version),
                self.ctx.metrics.ack_seconds.labels(action),
            )
        metrics[0].inc()
        t0 = time.perf_counter()
        self.busy += 1
        try:
            handler = getattr(self, self.routes.on[action])
            result = handler(payload) if action in self.routes.raw else handler(**to_snake(payload))
            if inspect.isawaitable(result):
                result = await result
            answer = result_payload(result)
        except OCPPError as exc:
            return self._refusal(action, exc.code, exc.description)
        except NormaliseError as exc:
            code = exc.code
            if code == "FormatViolation":
                code = self.dialect.format_violation
            else:
                self.ctx.metrics.readings_refused.labels("implausible").inc()
            return self._refusal(action, code, str(exc))
        except Exception as exc:
            if isinstance(exc, TypeError) and not self.ctx.config.validate:
                # an unexpected or missing keyword: the schema would have caught it
                return self._refusal(action, self.dialect.format_violation, str(exc))
            log.exception("station %s: %s handler failed", self.id, action)
            return self._refusal(action, "InternalError", type(exc).__name__)
        finally:
            self.busy -= 1
        metrics[1].observe(time.perf_counter() - t0)
        return answer

    def _refusal(self, action: str, code: str, description: str) -> Refusal:
        self.warn.warning("%s refused: %s: %s", action[:64], code, description)
        self.ctx.metrics.frame_errors.labels(code).inc()
        return Refusal(code, description)

    def answered(self, action: str, payload: dict[str, Any]) -> None:
        """The answer to ``action`` went out: start its ``@after`` hook in the background.

        A charger that reconnects without a BootNotification (common in 1.6) is brought to
        the desired state after its first answered message instead.
        """
        name = self.routes.after.get(action)
        if name is not None:
            out = getattr(self, name)(**to_snake(payload))
            if inspect.isawaitable(out):
                self._background(out)
        elif not self.reconciled and self.ctx.commands is not None:
            self._background(self.reconcile())

    def _background(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._background_tasks.add(task)
        task.add_done_callback(self._background_tasks.discard)

    # -- bus -------------------------------------------------------------------------
    @property
    def sessions(self) -> Sessions:
        """This station's transactions as known now (see :mod:`ocpp_gateway.sessions`)."""
        return self.ctx.sessions.get(self.id)

    def ignore(self, reason: str, what: str, session: str) -> None:
        """Acknowledge a call whose readings are not published, and say so.

        ``closed_transaction``: the transaction ended (its end published 0 kW for its
        connector); a late or repeated event must not make it draw again.
        ``unknown_evse``: nothing says which connector the transaction runs on (a gateway
        that lost ``ocpp.sessions``); a guess would count another connector twice.
        """
        self.ctx.metrics.readings_ignored.labels(reason).inc()
        self.warn.warning("%s for transaction %r not counted: %s", what, session[:40], reason)

    def bounds(self) -> Bounds:
        """What a plausible reading of this station is (its maximum, when known)."""
        config = self.ctx.config
        zone = self.ctx.registry.zone(self.id)
        if zone is None:
            return Bounds(max_skew_s=config.max_clock_skew_s)
        return Bounds(
            max_skew_s=config.max_clock_skew_s,
            max_power_kw=zone.max_station_kw * config.max_power_factor,
        )

    def _encode_checked(self, records: Sequence[MeterValue]) -> list[Message]:
        """Encode each record and decode it back with the contract: what the engine will
        read is checked here, before the charger is acknowledged, so no reading is
        acknowledged that a consumer must refuse."""
        messages = []
        for record in records:
            data = encode(record)
            try:
                decode(MeterValue, data, topic=topics.METER_VALUES)
            except ContractError as exc:
                self.ctx.metrics.readings_refused.labels("contract").inc(len(records))
                name = exc.field.removeprefix("$.")
                raise PropertyConstraintViolationError(
                    description=f"{name}: {exc.reason}"[:255]
                ) from None
            messages.append(Message(topics.METER_VALUES, self.id, data))
        return messages

    async def publish_durable(
        self, records: Sequence[MeterValue], sessions: Sessions | None = None
    ) -> None:
        """Publish readings and return only once durable; else raise ``InternalError``.

        Records that break the contract raise ``PropertyConstraintViolationError`` and
        none of the call's records is published (a charger retries a call as a whole).
        ``sessions``, the station's new transaction state, goes in the same batch (after
        the readings) and is adopted only once durable, so a retried call finds the
        state it left.
        """
        if not records and sessions is None:
            return
        ctx = self.ctx
        messages = self._encode_checked(records)
        if sessions is not None:
            state = sessions.record(self.id, now_utc())
            messages.append(Message(topics.OCPP_SESSIONS, self.id, encode(state)))
        skewed = sum(r.charger_ts is not None for r in records)
        if skewed:
            ctx.metrics.clock_skew.labels(self.id).inc(skewed)
            self.warn.warning(
                "%d readings stamped beyond %g s of our clock (charger says %s): "
                "stored with the received time",
                skewed, ctx.config.max_clock_skew_s, records[0].charger_ts,
            )  # fmt: skip
        t0 = time.perf_counter()
        try:
            # the bus holds the deadline (one per group commit on LocalBus's log), not
            # a timer of ours per reading; a bus past it raises PublishError
            await ctx.bus.publish_many(messages, timeout=ctx.config.ack_timeout)
        except BusError as exc:
            ctx.metrics.acks_refused.inc()
            ctx.metrics.readings_refused.labels("not_durable").inc(len(records))
            self.warn.warning("%d readings not durable, refusing ack: %s",
                              len(records), exc or type(exc).__name__)  # fmt: skip
            raise InternalError(description="readings not stored yet; retry later") from None
        ctx.metrics.publish_seconds.observe(time.perf_counter() - t0)
        ctx.metrics.readings.inc(len(records))
        if sessions is not None:
            ctx.sessions.put(self.id, sessions)

    async def publish_status(self, event: str, **fields: Any) -> None:
        """Best effort: a lost status line must not make the charger retry its call."""
        record = StationStatus(
            station_id=self.id,
            event=event,  # type: ignore[arg-type]
            ocpp_version=self.version,  # type: ignore[arg-type]
            gateway=self.ctx.config.name,
            ts=now_utc(),
            **fields,
        )
        try:
            await self.ctx.bus.publish_many(
                [Message(topics.STATION_STATUS, self.id, encode(record))],
                timeout=self.ctx.config.ack_timeout,
            )
        except BusError as exc:
            self.warn.warning("status %s not published: %r", event, exc)

    def boot_decision(self) -> tuple[str, int]:
        """("Accepted", heartbeat interval) or, when throttled, ("Pending", retry after)."""
        config = self.ctx.config
        if self.ctx.boots is None or self.ctx.boots.admit():
            self.booted = True
            return "Accepted", int(config.heartbeat_interval)
        return "Pending", int(config.boot_retry_s * (1 + random.random()))

    async def reconcile(self) -> None:
        """Bring the charger to the desired state (once per connection)."""
        if self.reconciled or self.ctx.commands is None:
            return
        self.reconciled = True
        if self.ctx.config.query_capabilities:
            # Asked now, while the charger is idle, not when an event's first profile is
            # due: at 5,000 chargers the queries were a tenth of the gateway's work while
            # the event was applied, one round trip more before every first profile.
            self._background(self.capabilities())
        await self.ctx.commands.reconcile(self)

    # -- our calls (used by CommandDelivery) -----------------------------------------
    async def request(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Send one of our calls (a camelCase payload) and return the answer's payload.

        Raises ``TimeoutError``, :class:`~ocpp_gateway.errors.StationOffline` or
        :class:`~ocpp_gateway.errors.ChargerRefused`.
        """
        if self.link is None:
            raise StationOffline(f"station {self.id} has no connection")
        return await self.link.request(action, payload)

    async def capabilities(self) -> Capabilities:
        """Rate units and stack levels the charger takes, asked once per connection
        (right after it is accepted, see :meth:`reconcile`); every caller meanwhile
        awaits the same query.

        Chargers that do not answer (NotImplemented, a timeout, a disconnect) get the
        defaults: both units allowed, no stack level cap.
        """
        caps = self._caps
        if caps is None:
            caps = self._caps = asyncio.ensure_future(self._ask_capabilities())
        elif caps.done():  # every command after the first: no new future per call
            return caps.result()
        # shielded: a cancelled command worker leaves the query to the others
        return await asyncio.shield(caps)

    async def _ask_capabilities(self) -> Capabilities:
        if not self.ctx.config.query_capabilities:
            return UNKNOWN
        action, payload = self.dialect.capability_query
        try:
            async with asyncio.timeout(self.ctx.config.capability_timeout):
                answer = await self.request(action, payload)
            return self.dialect.read_capabilities(answer)
        except (ChargerRefused, TimeoutError, StationOffline, ConnectionClosed) as exc:
            log.info("station %s: capabilities unknown (%r)", self.id, exc)
        except (KeyError, TypeError, ValueError) as exc:
            self.warn.warning("unreadable capabilities: %r", exc)
        return UNKNOWN
