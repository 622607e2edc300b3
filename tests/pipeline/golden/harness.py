"""A real pipeline for scenario tests: migrations compiled on a real PostgreSQL, a LocalBus,
an Engine on a virtual clock, and helpers that publish contract records and collect what
the sinks emit. Nothing is mocked."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import psycopg

from pipeline import topics
from pipeline.bus.local import LocalBus
from pipeline.engine import Engine, VirtualClock, apply_migrations

T0 = datetime.fromisoformat("2026-01-05T12:00:00+00:00")
SINK_TOPICS = [topics.SET_CHARGING_PROFILE, topics.ALERTS_OVERLOAD, topics.ALERTS_DR]


def ts(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


class Harness:
    """Drive the pipeline second by second of virtual time (``t`` is seconds after T0)."""

    def __init__(self, dsn: str, **vars: str) -> None:
        self.dsn = dsn
        self.vars = vars
        self.bus = LocalBus()
        self.clock = VirtualClock(T0)
        self.engine = Engine(dsn, self.bus, clock=self.clock)
        self.commands: dict[str, dict[str, Any]] = {}
        self.tombstones: list[tuple[float, str]] = []
        self.command_updates: list[tuple[float, str, dict[str, Any] | None]] = []
        self.alerts: list[dict[str, Any]] = []

    async def __aenter__(self) -> Harness:
        apply_migrations(self.dsn, overrides=self.vars)
        await self.bus.start()
        await self.engine.start(loop=False)
        self._out = self.bus.subscribe(SINK_TOPICS)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.engine.stop()
        await self.bus.stop()

    async def _pub(self, topic: str, key: str, value: dict[str, Any] | None) -> None:
        await self.bus.publish(topic, key, None if value is None else json.dumps(value).encode())

    async def station(
        self,
        station_id: str,
        zone: str,
        max_kw: float = 22.0,
        contract_kw: float = 22.0,
        min_active_kw: float = 0.0,
        *,
        unit: str = "W",
        phases: int = 3,
        voltage_v: float = 230.0,
    ) -> None:
        await self._pub(
            topics.STATION_ZONES,
            station_id,
            {
                "station_id": station_id,
                "zone_id": zone,
                "max_station_kw": max_kw,
                "contract_max_kw": contract_kw,
                "min_active_kw": min_active_kw,
                "charging_rate_unit": unit,
                "phases": phases,
                "voltage_v": voltage_v,
            },
        )

    async def remove_station(self, station_id: str) -> None:
        await self._pub(topics.STATION_ZONES, station_id, None)

    async def sample(
        self, station_id: str, connector: int, kw: float | None, t: float, session: str | None = "s"
    ) -> None:
        await self._pub(
            topics.METER_VALUES,
            station_id,
            {
                "station_id": station_id,
                "connector_id": connector,
                "session_id": session,
                "power_kw": kw,
                "event_ts": ts(t),
                "received_ts": ts(t),
                "ocpp_version": "1.6",
            },
        )

    async def status(
        self,
        station_id: str,
        event: str,
        t: float,
        connector: int | None = None,
        status: str | None = None,
        *,
        evse_connector: int | None = None,
        ocpp_version: str = "1.6",
    ) -> None:
        """What the gateway publishes of a station's connection and connectors (2.0.1:
        ``connector`` is the EVSE, ``evse_connector`` the connector within it)."""
        await self._pub(
            topics.STATION_STATUS,
            station_id,
            {
                "station_id": station_id,
                "event": event,
                "connector_id": connector,
                "status": status,
                "ocpp_version": ocpp_version,
                "ts": ts(t),
                **({"evse_connector_id": evse_connector} if evse_connector is not None else {}),
            },
        )

    async def signal(
        self,
        signal_id: str,
        zone: str,
        signal_type: str = "CURTAIL",
        start: float = 0,
        end: float = 3600,
        modification: int = 0,
        priority: int = 2,
        received: float | None = None,
        event_id: str | None = None,
        **amount: float,
    ) -> None:
        await self._pub(
            topics.DEMAND_RESPONSE,
            signal_id,
            {
                "signal_id": signal_id,
                "modification": modification,
                "zone_id": zone,
                "signal_type": signal_type,
                "start_ts": ts(start),
                "end_ts": ts(end),
                "priority": priority,
                "received_ts": ts(start if received is None else received),
                **({"event_id": event_id} if event_id else {}),
                **amount,
            },
        )

    async def result(
        self,
        station_id: str,
        signal_id: str,
        status: str,
        t: float,
        limit_kw: float | None = None,
    ) -> None:
        await self._pub(
            topics.COMMAND_RESULTS,
            station_id,
            {
                "station_id": station_id,
                "signal_id": signal_id,
                "action": "SetChargingProfile",
                "status": status,
                "sent_ts": ts(t),
                "result_ts": ts(t),
                **({"limit_kw": limit_kw} if limit_kw is not None else {}),
            },
        )

    async def tick(self, t: float) -> list[tuple[str, str | None, dict[str, Any] | None]]:
        """Set the clock to T0 + t, run one tick, collect and return what the sinks sent."""
        self.clock.set(T0 + timedelta(seconds=t))
        await self.engine.run_tick()
        out = []
        for r in await self._out.batch(max_records=100_000, timeout=0):
            value = None if r.value is None else json.loads(r.value)
            out.append((r.topic, r.key, value))
            if r.topic == topics.SET_CHARGING_PROFILE:
                self.command_updates.append((t, r.key or "", value))
                if value is None:
                    self.commands.pop(r.key or "", None)
                    self.tombstones.append((t, r.key or ""))
                else:
                    self.commands[r.key or ""] = value
            else:
                self.alerts.append({"topic": r.topic, **(value or {})})
        return out

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        """Rows of a query against the engine's views, read at the engine clock."""
        with psycopg.connect(self.dsn) as conn:
            return conn.execute(sql).fetchall()  # type: ignore[arg-type]

    def targets(self) -> dict[str, float]:
        return {k: v["target_power_kw"] for k, v in sorted(self.commands.items())}
