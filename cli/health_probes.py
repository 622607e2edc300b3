"""The probes behind ``/healthz`` for one ``gridctl run``: engine, database, bus, gateway.

The bridge adds its own probe; the API serves the report (``dr_bridge.api``). Each probe
exercises the real thing rather than a flag: a new database connection and ``SELECT 1``
(a paused PostgreSQL accepts the TCP connection and then answers nothing, which only a
real round trip sees), a broker metadata request, a TCP connection to the OCPP port, and
the age of the engine's last completed tick.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pipeline.bus import Bus
from pipeline.health import Health, Probe, age_probe


def engine_stale_after(tick: float) -> float:
    """How old the engine's last tick may be before health says stalled (seconds)."""
    return max(10.0, 5 * tick)


def database_probe(dsn: str, timeout: float) -> Probe:
    async def probe() -> str:
        import psycopg

        async with await psycopg.AsyncConnection.connect(
            dsn, autocommit=True, connect_timeout=max(1, int(timeout)), prepare_threshold=None
        ) as conn:
            await conn.execute("SELECT 1")
        return "answers SELECT 1"

    return probe


def bus_probe(bus: Bus, timeout: float) -> Probe:
    async def probe() -> str:
        return await bus.ping(timeout)

    return probe


def listener_probe(host: str, port: int, what: str) -> Probe:
    """A TCP connection to ``host:port`` succeeds (the server still listens)."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host

    async def probe() -> str:
        _reader, writer = await asyncio.open_connection(shown, port)
        writer.close()
        await writer.wait_closed()
        return f"{what} listening on {shown}:{port}"

    return probe


def build_health(
    *,
    bus: Bus,
    engine: Any,
    tick: float,
    database_url: str | None,
    gateway_host: str,
    gateway_port: int,
    timeout: float = 2.0,
) -> Health:
    """Probes for what this process runs; the bridge adds ``bridge`` itself."""
    health = Health(timeout=timeout)
    if engine is not None:
        health.add(
            "engine", age_probe(lambda: engine.last_tick_at, engine_stale_after(tick), "tick")
        )
    if database_url:
        health.add("database", database_probe(database_url, timeout))
    health.add("bus", bus_probe(bus, timeout))
    health.add("gateway", listener_probe(gateway_host, gateway_port, "OCPP"))
    return health
