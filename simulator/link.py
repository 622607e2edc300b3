"""One charger's connection: connect with Basic auth, boot, drive, reconnect with backoff.

The websocket is opened without compression and with small queues, because a fleet of
10,000 keeps 10,000 of them open: permessage-deflate alone would cost hundreds of kB of
zlib state per socket. Reconnect waits grow exponentially with jitter drawn from the
seeded generator, so a restarted CSMS is not hit by the whole fleet at once and a run
repeats given the seed.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import ssl
import time
from collections.abc import Callable
from urllib.parse import quote

import websockets
from websockets.asyncio.client import connect

from simulator.charger import ChargerSettings, ChargerState, Driver
from simulator.charger16 import SUBPROTOCOL as SUB16
from simulator.charger16 import Charger16
from simulator.charger201 import SUBPROTOCOL as SUB201
from simulator.charger201 import Charger201
from simulator.observe import Observations

log = logging.getLogger("gridctl.simulate")
#: The ocpp library logs every frame at INFO; a fleet would drown any console that shows
#: INFO, so the simulated chargers log through their own logger, quiet by default.
OCPP_LOG = logging.getLogger("gridctl.simulate.ocpp")
OCPP_LOG.setLevel(logging.WARNING)


def station_url(base: str, station_id: str) -> str:
    """``base/{station_id}``, or ``base`` with ``{station_id}`` filled in."""
    sid = quote(station_id, safe="")
    if "{station_id}" in base:
        return base.replace("{station_id}", sid)
    return f"{base.rstrip('/')}/{sid}"


def basic_auth(user: str, password: str) -> str:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return f"Basic {token}"


class LinkOptions:
    """Connection knobs shared by a fleet."""

    __slots__ = ("backoff_max", "backoff_min", "open_timeout", "ping_interval", "ssl", "url")

    def __init__(
        self,
        url: str,
        *,
        backoff_min: float = 1.0,
        backoff_max: float = 60.0,
        open_timeout: float = 10.0,
        ping_interval: float | None = None,
        ca_file: str | None = None,
    ) -> None:
        self.url = url
        # wss (OCPP security profile 2): one TLS context for the whole fleet; ``ca_file``
        # trusts a private CA or a self-signed gateway certificate.
        self.ssl: ssl.SSLContext | None = None
        if url.startswith("wss://"):
            self.ssl = ssl.create_default_context(cafile=ca_file)
        self.backoff_min = backoff_min
        self.backoff_max = backoff_max
        self.open_timeout = open_timeout
        self.ping_interval = ping_interval


async def run_charger(
    state: ChargerState,
    options: LinkOptions,
    settings: ChargerSettings,
    obs: Observations,
    stop: asyncio.Event,
    connected: set[str],
    clock: Callable[[], float] = time.time,
) -> None:
    """Keep ``state``'s charger connected and charging until ``stop`` is set."""
    spec = state.spec
    v201 = spec.ocpp_version == "2.0.1"
    cls: type[Driver] = Charger201 if v201 else Charger16
    sub = SUB201 if v201 else SUB16
    attempt = 0
    url = station_url(options.url, spec.station_id)
    headers = {"Authorization": basic_auth(spec.station_id, spec.password)}
    while not stop.is_set():
        try:
            async with connect(
                url,
                subprotocols=[sub],  # type: ignore[list-item]
                additional_headers=headers,
                compression=None,
                open_timeout=options.open_timeout,
                ping_interval=options.ping_interval,
                max_size=2**16,
                max_queue=4,
                ssl=options.ssl,
            ) as ws:
                if ws.subprotocol != sub:
                    obs.connect_failures["subprotocol"] += 1
                    raise ConnectionError(f"server did not accept {sub}")
                obs.connects += 1
                cp = cls(  # type: ignore[call-arg]
                    spec.station_id, ws, response_timeout=settings.response_timeout, logger=OCPP_LOG
                )
                cp.setup(state, settings, obs, clock)
                reader = asyncio.create_task(cp.start())  # type: ignore[attr-defined]
                try:
                    interval = await _boot(cp, stop, reader)
                    if interval is None:
                        continue
                    if interval > 0:
                        cp.heartbeat_every = interval
                    attempt = 0
                    connected.add(spec.station_id)
                    driver = asyncio.create_task(cp.drive(stop))
                    done, _ = await asyncio.wait(
                        {reader, driver}, return_when=asyncio.FIRST_COMPLETED
                    )
                    for task in (reader, driver):
                        if task not in done:
                            task.cancel()
                            with contextlib.suppress(BaseException):
                                await task
                    for task in done:
                        task.result()  # re-raise what ended the connection
                finally:
                    connected.discard(spec.station_id)
                    if not reader.done():
                        reader.cancel()
                        with contextlib.suppress(BaseException):
                            await reader
            obs.disconnects += 1
        except websockets.InvalidStatus as exc:
            obs.connect_failures[f"HTTP {exc.response.status_code}"] += 1
        except websockets.ConnectionClosed:
            obs.disconnects += 1
        except (OSError, TimeoutError, websockets.InvalidHandshake, ConnectionError) as exc:
            obs.connect_failures[type(exc).__name__] += 1
        except Exception as exc:  # a bug must not silently remove a charger from the fleet
            log.exception("charger %s: unexpected error, reconnecting", spec.station_id)
            obs.connect_failures[f"error {type(exc).__name__}"] += 1
        if stop.is_set():
            break
        attempt += 1
        delay = min(options.backoff_max, options.backoff_min * 2 ** min(attempt - 1, 16))
        delay *= 0.5 + state.rng(settings.seed, f"backoff{attempt}").random()
        await offline(state, settings, stop, delay, clock)


async def offline(
    state: ChargerState,
    settings: ChargerSettings,
    stop: asyncio.Event,
    delay: float,
    clock: Callable[[], float] = time.time,
) -> None:
    """Wait ``delay`` s without a CSMS while the car keeps charging under the profiles.

    A real charger does not freeze when the link drops: the energy register runs on and a
    limit lapses at its ``validTo`` (that is the point of a self-expiring profile), so the
    state is brought up to date at each lapse and at least once per meter interval.
    """
    until = clock() + delay
    while not stop.is_set():
        now = clock()
        state.refresh(now, settings.ac)
        if now >= until:
            return
        wake = min(until, now + (state.interval or settings.meter_interval))
        lapse = state.next_change(now, wake)
        if lapse is not None:
            wake = lapse + 0.001
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, wake - clock())):
                await stop.wait()


async def _boot(cp: Driver, stop: asyncio.Event, reader: asyncio.Task[None]) -> float | None:
    """BootNotification until Accepted (Pending/Rejected: wait and retry), or ``None``."""
    while not stop.is_set() and not reader.done():
        interval = await cp.boot()
        if interval is not None:
            return interval
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(cp.boot_retry):
                await stop.wait()
    if reader.done():
        reader.result()
    return None
