"""Properties of the allocation law, checked on the compiled SQL itself.

Each example writes a random zone straight into the engine tables of a real PostgreSQL
(stations, one fresh sample per connector, one signal with a zone limit), reads
``dr_station_targets`` at the engine clock, and checks it against a small Python reference
of the law and against the properties the control law promises.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.engine import apply_migrations

pytestmark = pytest.mark.timeout(300)

T0 = datetime.fromisoformat("2026-01-05T12:00:00+00:00")
QUANTUM = 0.5


@dataclass(frozen=True)
class Station:
    load: float | None  # None: no fresh sample
    min_active: float
    max_kw: float
    contract: float


def reference(stations: list[Station], cap: float, shed: bool) -> list[float]:
    """The law in Python: floors first, the rest by load, clamp, quantise down."""
    floors = [
        0.0
        if shed or (s.load is not None and s.load <= 0)
        else min(s.min_active, s.max_kw, s.contract)
        for s in stations
    ]
    total = sum(s.load or 0.0 for s in stations)
    spare = max(0.0, cap - sum(floors))
    out = []
    for s, floor in zip(stations, floors, strict=True):
        ceiling = min(s.max_kw, s.contract)
        share = spare * s.load / total if s.load is not None and total > 0 else 0.0
        raw = min(ceiling, floor + share)
        out.append(max(floor, math.floor(raw / QUANTUM + 1e-6) * QUANTUM))
    return out


kw = st.floats(min_value=0.0, max_value=50.0, allow_nan=False).map(lambda x: round(x, 2))
stations_st = st.lists(
    st.builds(
        Station,
        load=st.one_of(st.none(), kw),
        min_active=st.sampled_from([0.0, 1.4, 2.0, 4.2]),
        max_kw=st.floats(min_value=1.0, max_value=50.0).map(lambda x: round(x, 1)),
        contract=st.floats(min_value=1.0, max_value=50.0).map(lambda x: round(x, 1)),
    ),
    min_size=1,
    max_size=6,
)


@pytest.fixture
def db(postgres: str) -> psycopg.Connection:
    apply_migrations(postgres)
    with psycopg.connect(postgres, autocommit=True) as conn:
        conn.execute("UPDATE gridctl_engine.clock SET ts = %s", (T0,))
        yield conn


def targets(
    conn: psycopg.Connection, stations: list[Station], cap: float, shed: bool
) -> list[float]:
    with conn.transaction():
        conn.execute("DELETE FROM station_zones")
        conn.execute("DELETE FROM meter_values")
        conn.execute("DELETE FROM dr_signals")
        for i, s in enumerate(stations):
            sid = f"S{i}"
            conn.execute(
                "INSERT INTO station_zones (kafka_key, station_id, zone_id, max_station_kw, "
                "contract_max_kw, min_active_kw) VALUES (%s, %s, 'Z', %s, %s, %s)",
                (sid.encode(), sid, s.max_kw, s.contract, s.min_active),
            )
            if s.load is not None:
                # Reported with a session only when drawing power (idle but reporting: no
                # session, floor 0).
                conn.execute(
                    "INSERT INTO meter_values (station_id, connector_id, session_id, power_kw, "
                    "event_ts) VALUES (%s, 1, %s, %s, %s)",
                    (sid, "x" if s.load > 0 else None, s.load, T0 - timedelta(seconds=5)),
                )
        conn.execute(
            "INSERT INTO dr_signals (signal_id, modification, zone_id, signal_type, "
            "zone_limit_kw, start_ts, end_ts, priority) VALUES ('sig', 0, 'Z', %s, %s, %s, %s, 2)",
            (
                "SHED" if shed else "CURTAIL",
                cap,
                T0 - timedelta(seconds=1),
                T0 + timedelta(hours=1),
            ),
        )
        rows = conn.execute(
            "SELECT station_id, target_kw, floor_kw, ceiling_kw FROM dr_station_targets "
            "ORDER BY length(station_id), station_id"
        ).fetchall()
    assert [r[0] for r in rows] == [f"S{i}" for i in range(len(stations))]
    return [r[1] for r in rows]


def floors_of(stations: list[Station], shed: bool) -> list[float]:
    return [
        0.0
        if shed or (s.load is not None and s.load <= 0)
        else min(s.min_active, s.max_kw, s.contract)
        for s in stations
    ]


SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(stations=stations_st, cap=kw, shed=st.booleans())
def test_sql_matches_reference_and_respects_bounds(
    db: psycopg.Connection, stations: list[Station], cap: float, shed: bool
) -> None:
    got = targets(db, stations, cap, shed)
    assert got == pytest.approx(reference(stations, cap, shed), abs=1e-9)
    floors = floors_of(stations, shed)
    for s, floor, t in zip(stations, floors, got, strict=True):
        assert floor - 1e-9 <= t <= min(s.max_kw, s.contract) + 1e-9
    if sum(floors) <= cap:
        assert sum(got) <= cap + 1e-9


@SETTINGS
@given(stations=stations_st, cap=kw, extra=kw, shed=st.booleans())
def test_raising_the_cap_never_lowers_a_target(
    db: psycopg.Connection, stations: list[Station], cap: float, extra: float, shed: bool
) -> None:
    low = targets(db, stations, cap, shed)
    high = targets(db, stations, cap + extra, shed)
    for a, b in zip(low, high, strict=True):
        assert b >= a - 1e-9
