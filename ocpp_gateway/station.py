"""What both versions' ChargePoint subclasses share: fast routing and durable publishing.

The ocpp library's router validates with jsonschema in a thread and converts keys with
regular expressions on every message. :class:`StationBase` keeps the library's model
(``@on`` handlers, snake_case keyword arguments, typed results, ``call()`` for our
requests) but routes itself: frames are decoded by :mod:`ocpp_gateway.frames`, payloads
checked by the compiled validators of :mod:`ocpp_gateway.validation`, keys converted with
a memo. Every problem becomes the right CallError and a log line naming the station; the
connection keeps reading.

Readings are acknowledged only when durable: :meth:`StationBase.publish_durable` raises
the library's ``InternalError`` (so the charger gets a CallError and retries) when the bus
does not confirm within ``ack_timeout``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from ocpp.charge_point import remove_nones, serialize_as_dict, snake_to_camel_case
from ocpp.exceptions import (
    FormatViolationError,
    InternalError,
    OCPPError,
    PropertyConstraintViolationError,
)
from ocpp.messages import Call
from websockets.exceptions import ConnectionClosed

from ocpp_gateway import frames, validation
from ocpp_gateway.auth import StationRegistry
from ocpp_gateway.budget import Budget
from ocpp_gateway.config import GatewayConfig
from ocpp_gateway.errors import FrameError, StationOffline
from ocpp_gateway.logsafe import Warnings
from ocpp_gateway.metrics import GatewayMetrics
from ocpp_gateway.normalise import Bounds, NormaliseError
from ocpp_gateway.profiles import UNKNOWN, Capabilities
from pipeline import topics
from pipeline.bus import Bus, BusError, Message
from pipeline.contracts import (
    INT32_MAX,
    ContractError,
    MeterValue,
    StationStatus,
    decode,
    encode,
)

if TYPE_CHECKING:
    from ocpp_gateway.commands import CommandDelivery

__all__ = ["StationBase", "StationContext", "check_id", "now_utc"]

log = logging.getLogger("ocpp_gateway")


def now_utc() -> datetime:
    return datetime.now(UTC)


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


@dataclass(slots=True)
class StationContext:
    """What a station connection needs from the gateway (injected, so tests can build one)."""

    bus: Bus
    config: GatewayConfig
    metrics: GatewayMetrics
    registry: StationRegistry
    commands: CommandDelivery | None = None
    #: station -> connector/EVSE id -> running session id; kept across reconnects, since a
    #: 1.6 charger that reconnects mid-session sends MeterValues without transactionId
    sessions: dict[str, dict[int, str]] = field(default_factory=dict)
    boots: BootThrottle | None = None
    #: station -> its budget, kept across reconnects: reconnecting must not refill it
    budgets: dict[str, Budget] = field(default_factory=dict)

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


_SNAKE_1 = re.compile("(.)([A-Z][a-z]+)")
_SNAKE_2 = re.compile("([a-z0-9])([A-Z])(?=\\S)")
_SNAKE_MEMO: dict[str, str] = {}


def _snake_key(key: str) -> str:
    out = _SNAKE_MEMO.get(key)
    if out is None:
        # The library's conversion, memoised: the key set of OCPP is small and fixed.
        k = key.replace("ocppCSMSURL", "ocpp_csms_url").replace("V2X", "_v2x")
        k = _SNAKE_2.sub(r"\1_\2", _SNAKE_1.sub(r"\1_\2", k.replace("V2G", "_v2g"))).lower()
        if len(_SNAKE_MEMO) < 10_000:  # a fuzzing charger must not grow it without bound
            _SNAKE_MEMO[key] = k
        out = k
    return out


def to_snake(data: Any) -> Any:
    """camelCase keys -> snake_case keys, recursively (the library's rule, memoised)."""
    if type(data) is dict:
        return {
            _SNAKE_MEMO.get(k) or _snake_key(k): v if type(v) not in _NESTED else to_snake(v)
            for k, v in data.items()
        }
    if type(data) is list:
        return [v if type(v) not in _NESTED else to_snake(v) for v in data]
    return data


_NESTED = (dict, list)


class StationBase:
    """Mixin placed before the library's ``ChargePoint`` in each version's class."""

    version: ClassVar[str]
    #: every action of this version (for NotImplemented vs NotSupported)
    known_actions: ClassVar[frozenset[str]]

    id: str
    route_map: dict[str, dict[str, Any]]
    _response_queue: asyncio.Queue[Any]
    _ocpp_version: str

    @classmethod
    def route_map_actions(cls) -> list[str]:
        """The actions this class has an ``@on`` handler for (to precompile validators)."""
        actions = (getattr(getattr(cls, name), "_on_action", None) for name in dir(cls))
        return sorted({str(getattr(a, "value", a)) for a in actions if a is not None})

    def setup(self, ctx: StationContext) -> None:
        """Bind the gateway context; call right after ``ChargePoint.__init__``."""
        self.ctx = ctx
        self.sessions = ctx.sessions.setdefault(self.id, {})  # connector/EVSE -> session
        self.booted = False
        self.reconciled = False
        self.busy = 0  # calls being handled now (graceful shutdown waits for 0)
        self._after_tasks: set[asyncio.Task[Any]] = set()
        self._caps: Capabilities | None = None
        self._per_action: dict[str, tuple[Any, Any]] = {}  # action -> (counter, histogram)
        self._budget = ctx.budget(self.id)
        #: this station's warnings: escaped, and at most a few per 10 s with a count
        self.warn = Warnings(log, f"station {self.id}: ")

    async def start(self) -> None:
        """Read frames until the socket closes (raises ``ConnectionClosed`` then).

        Each frame is charged to the connection's :class:`~.budget.Budget` before it is
        parsed: over budget, the next read waits (the charger is slowed, TCP pushes back);
        still over after ``budget_disconnect_s``, the connection is closed with 1008.
        """
        connection = self._connection  # type: ignore[attr-defined]
        budget = self._budget
        clock = time.monotonic
        while True:
            message = await connection.recv()
            now = clock()
            wait = budget.charge(len(message), now)
            if wait > 0.0:
                await self._slow_down(wait, now)
            await self.route_message(message)

    async def _slow_down(self, wait: float, now: float) -> None:
        config = self.ctx.config
        if self._budget.flooding(now):
            self.ctx.metrics.budget.labels("disconnected").inc()
            reason = (
                f"over budget for {config.budget_disconnect_s:g} s "
                f"({config.budget_msgs_per_s:g} msgs/s, {config.budget_bytes_per_s:g} bytes/s)"
            )
            self.warn.warning("closed (1008): %s", reason)
            connection = self._connection  # type: ignore[attr-defined]
            try:
                # A flooder's close answer queues behind everything it already sent: give
                # it a second, not the whole close timeout, then drop the TCP connection.
                async with asyncio.timeout(1.0):
                    await connection.close(1008, reason)
            except TimeoutError:
                connection.transport.abort()
            return  # the next recv() raises ConnectionClosed
        self.ctx.metrics.budget.labels("slowed").inc()
        if self._budget.throttled_since == now:  # the first wait of a run
            self.warn.warning("over its budget, slowed down")
        await asyncio.sleep(wait)

    async def route_message(self, raw: str | bytes) -> None:
        try:
            msg = frames.decode(raw, self.version)
        except FrameError as exc:
            self.warn.warning("bad frame (%s): %s", exc.code, exc.reason)
            self.ctx.metrics.frame_errors.labels(exc.code).inc()
            await self._send(frames.encode_call_error(exc.unique_id, exc.code, exc.reason))
            return
        if isinstance(msg, Call):
            self.busy += 1
            try:
                await self._dispatch(msg, time.perf_counter())
            finally:
                self.busy -= 1
        elif self._call_lock.locked():  # type: ignore[attr-defined]
            self._response_queue.put_nowait(msg)
        else:
            # Nothing of ours is waiting: queueing it would let a confused (or hostile)
            # charger grow the queue without bound.
            self.warn.warning("unexpected answer %s ignored", msg.unique_id)

    async def _dispatch(self, msg: Call, t0: float) -> None:
        action = msg.action
        handlers = self.route_map.get(action)
        handler = handlers.get("_on_action") if handlers else None
        if handler is None:
            code = "NotSupported" if action in self.known_actions else "NotImplemented"
            await self._refuse(msg, code, f"action {action[:64]!r} is not handled")
            return
        metrics = self._per_action.get(action)
        if metrics is None:  # labels() is slow: one lookup per action and connection
            metrics = self._per_action[action] = (
                self.ctx.metrics.messages.labels(action, self.version),
                self.ctx.metrics.ack_seconds.labels(action),
            )
        metrics[0].inc()
        try:
            if self.ctx.config.validate:
                validation.validate_request(self.version, action, msg.payload)
            kwargs = to_snake(msg.payload)
            result = handler(**kwargs)
            if inspect.isawaitable(result):
                result = await result
        except OCPPError as exc:
            await self._refuse(msg, exc.code, exc.description)
            return
        except NormaliseError as exc:
            code = exc.code
            if code == "FormatViolation":
                code = frames.format_violation_code(self.version)
            else:
                self.ctx.metrics.readings_refused.labels("implausible").inc()
            await self._refuse(msg, code, str(exc))
            return
        except Exception as exc:
            if isinstance(exc, TypeError) and not self.ctx.config.validate:
                # an unexpected or missing keyword: the schema would have caught it
                await self._refuse(msg, frames.format_violation_code(self.version), str(exc))
                return
            log.exception("station %s: %s handler failed", self.id, action)
            await self._refuse(msg, "InternalError", f"{type(exc).__name__}")
            return
        payload = snake_to_camel_case(remove_nones(serialize_as_dict(result)))
        await self._send(frames.encode_call_result(msg.unique_id, payload))
        metrics[1].observe(time.perf_counter() - t0)
        after = handlers.get("_after_action") if handlers else None
        if after is not None:
            out = after(**kwargs)
            if inspect.isawaitable(out):
                self._background(out)
        elif not self.reconciled and self.ctx.commands is not None:
            # A charger that reconnects without a BootNotification (common in 1.6) is
            # brought to the desired state after its first message instead.
            self._background(self.reconcile())

    def _background(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._after_tasks.add(task)
        task.add_done_callback(self._after_tasks.discard)

    async def _refuse(self, msg: Call, code: str, reason: str) -> None:
        self.warn.warning("%s %s refused: %s: %s", msg.action[:64], msg.unique_id, code, reason)
        self.ctx.metrics.frame_errors.labels(code).inc()
        await self._send(frames.encode_call_error(msg.unique_id, code, reason))

    async def _send(self, message: str) -> None:
        await self._connection.send(message)  # type: ignore[attr-defined]

    # -- bus -------------------------------------------------------------------------
    def connector_of(self, session: str) -> int:
        """The connector/EVSE a running session is on (0 when unknown, e.g. after restart)."""
        return next((c for c, s in self.sessions.items() if s == session), 0)

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
                field = exc.field.removeprefix("$.")
                raise PropertyConstraintViolationError(
                    description=f"{field}: {exc.reason}"[:255]
                ) from None
            messages.append(Message(topics.METER_VALUES, self.id, data))
        return messages

    async def publish_durable(self, records: Sequence[MeterValue]) -> None:
        """Publish readings and return only once durable; else raise ``InternalError``.

        Records that break the contract raise ``PropertyConstraintViolationError`` and
        none of the call's records is published (a charger retries a call as a whole).
        """
        if not records:
            return
        ctx = self.ctx
        messages = self._encode_checked(records)
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
            async with asyncio.timeout(ctx.config.ack_timeout):
                await ctx.bus.publish_many(messages)
        except (BusError, TimeoutError) as exc:
            ctx.metrics.acks_refused.inc()
            ctx.metrics.readings_refused.labels("not_durable").inc(len(records))
            self.warn.warning("%d readings not durable, refusing ack: %s",
                              len(records), exc or type(exc).__name__)  # fmt: skip
            raise InternalError(description="readings not stored yet; retry later") from None
        ctx.metrics.publish_seconds.observe(time.perf_counter() - t0)
        ctx.metrics.readings.inc(len(records))

    async def publish_status(self, event: str, **fields: Any) -> None:
        """Best effort: a lost status line must not make the charger retry its call."""
        record = StationStatus(
            station_id=self.id,
            event=event,  # type: ignore[arg-type]
            ocpp_version=self.version,  # type: ignore[arg-type]
            ts=now_utc(),
            **fields,
        )
        try:
            async with asyncio.timeout(self.ctx.config.ack_timeout):
                await self.ctx.bus.publish(topics.STATION_STATUS, self.id, encode(record))
        except (BusError, TimeoutError) as exc:
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
        await self.ctx.commands.reconcile(self)  # type: ignore[arg-type]

    # -- commands (used by CommandDelivery) ------------------------------------------
    async def capabilities(self) -> Capabilities:
        """Rate units and stack levels the charger takes, asked once per connection.

        Chargers that do not answer (NotImplemented, a timeout, a disconnect) get the
        defaults: both units allowed, no stack level cap.
        """
        if self._caps is None:
            caps = UNKNOWN
            if self.ctx.config.query_capabilities:
                try:
                    async with asyncio.timeout(self.ctx.config.capability_timeout):
                        caps = await self._query_capabilities()
                except (OCPPError, TimeoutError, StationOffline, ConnectionClosed) as exc:
                    log.info("station %s: capabilities unknown (%r)", self.id, exc)
                except (KeyError, TypeError, ValueError) as exc:
                    self.warn.warning("unreadable capabilities: %r", exc)
            self._caps = caps
        return self._caps

    async def _query_capabilities(self) -> Capabilities:
        raise NotImplementedError

    async def request(self, action: str, kwargs: dict[str, Any]) -> Any:
        """Send one of our calls and return the typed result (``call(suppress=False)``).

        Our payload is checked with the compiled validator (tens of µs) instead of the
        library's jsonschema in a thread (~1 ms of CPU and two thread hops per call, half
        the gateway's CPU when a DR event sends 1,000 profiles at once,
        ``bench/dr_latency.py``). The charger's answer is not schema-checked: an unknown
        status counts as Rejected in delivery, missing fields as a FormationViolation.
        """
        module = self._call_module  # type: ignore[attr-defined]
        payload = getattr(module, action)(**kwargs)
        if self.ctx.config.validate:
            # kwargs are plain JSON values (profiles.py, the capability queries), so they
            # convert without dataclasses.asdict(), which the library's call() runs again.
            body = snake_to_camel_case(remove_nones(kwargs))
            try:
                validation.validate_request(self.version, action, body)
            except OCPPError as exc:
                raise ValueError(f"gridctl built an invalid {action}: {exc}") from None
        # The library's call() waits out its whole response timeout when the socket
        # closes; race it against the close so delivery learns "Offline" at once.
        call = asyncio.ensure_future(
            self.call(payload, suppress=False, skip_schema_validation=True)  # type: ignore[attr-defined]
        )
        closed = asyncio.ensure_future(self._connection.wait_closed())  # type: ignore[attr-defined]
        try:
            await asyncio.wait({call, closed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()
            if not call.done():
                call.cancel()
        if call.done() and not call.cancelled():
            try:
                return call.result()
            except TypeError as exc:  # the answer lacks or adds fields (not schema-checked)
                raise FormatViolationError(description=f"{action} answer: {exc}"[:255]) from None
        raise StationOffline(f"station {self.id} disconnected before answering {action}")
