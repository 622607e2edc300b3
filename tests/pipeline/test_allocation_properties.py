"""Properties of the allocation law (control law v2), checked on the compiled SQL itself.

Each example writes a random zone straight into the engine tables of a real PostgreSQL
(stations, one pre-start sample per connector, one signal with a zone limit), reads
``dr_station_targets`` at the engine clock, and checks it against a small Python reference
of the law and against the properties the control law promises (docs/control-law.md).
Stations are three-phase 230 V limited in W: minimum 6 A x 3 x 230 V = 4.14 kW, rounded up
to the 0.1 kW step (4.2), or min_active_kw if larger.
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

pytestmark = pytest.mark.timeout(600)

T0 = datetime.fromisoformat("2026-01-05T12:00:00+00:00")
STEP = 0.1
EPS = 1e-6


@dataclass(frozen=True)
class Station:
    load: float | None  # None: no fresh sample
    min_active: float
    max_kw: float
    contract: float

    @property
    def ceiling(self) -> float:
        return min(self.max_kw, self.contract)

    @property
    def min_kw(self) -> float:
        raw = max(self.min_active, 6 * 3 * 230 / 1000)
        return min(self.ceiling, math.ceil(raw / STEP - EPS) * STEP)


def floors_of(stations: list[Station], shed: bool) -> list[float]:
    return [0.0 if shed or (s.load is not None and s.load <= 0.1) else s.min_kw for s in stations]


def water_fill(available: float, rooms: dict[int, float], weights: dict[int, float]) -> dict:
    """Pour ``available`` into stations by weight, none above its room: the classic
    iteration (share by weight; whoever would overflow is filled and leaves; again)."""
    parts = dict.fromkeys(rooms, 0.0)
    active = set(rooms)
    left = available
    while active and left > EPS:
        level = left / sum(weights[i] for i in active)
        full = {i for i in active if rooms[i] <= level * weights[i] + EPS}
        if not full:
            for i in active:
                parts[i] = level * weights[i]
            break
        for i in full:
            parts[i] = rooms[i]
            left -= rooms[i]
        active -= full
    return parts


def reference(stations: list[Station], cap: float, shed: bool) -> list[float]:
    """The law in Python: floors first; of the stations without one, those of largest
    frozen demand get their minimum while the minima fit, the others pause; the rest of the
    cap water-filled by frozen demand up to the ceilings, quantised down."""
    floors = floors_of(stations, shed)
    weights = [s.load if s.load is not None and s.load > 0.1 else 0.0 for s in stations]
    free = cap - sum(floors)
    base = list(floors)
    running = 0.0
    order = sorted(range(len(stations)), key=lambda i: (-weights[i], f"S{i}"))
    for i in order:
        if floors[i] > 0 or weights[i] <= 0:
            continue
        running += stations[i].min_kw
        if running <= free + EPS:
            base[i] = stations[i].min_kw
    fill = [i for i in range(len(stations)) if base[i] > 0 and weights[i] > 0]
    parts = water_fill(
        max(0.0, cap - sum(base)),
        {i: max(0.0, stations[i].ceiling - base[i]) for i in fill},
        {i: weights[i] for i in fill},
    )
    out = []
    for i, s in enumerate(stations):
        if base[i] <= 0:
            out.append(0.0)
            continue
        raw = min(s.ceiling, base[i] + parts.get(i, 0.0))
        out.append(max(base[i], math.floor(raw / STEP + EPS) * STEP))
    return out


kw = st.floats(min_value=0.0, max_value=50.0, allow_nan=False).map(lambda x: round(x, 2))
stations_st = st.lists(
    st.builds(
        Station,
        load=st.one_of(st.none(), kw),
        min_active=st.sampled_from([0.0, 1.4, 5.0]),
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


def setup(conn: psycopg.Connection, stations: list[Station], cap: float, shed: bool) -> None:
    conn.execute("UPDATE gridctl_engine.clock SET ts = %s", (T0,))
    for table in ("station_zones", "meter_values", "dr_signals", "dr_baselines"):
        conn.execute(f"DELETE FROM {table}")  # type: ignore[arg-type]
    for i, s in enumerate(stations):
        sid = f"S{i}"
        conn.execute(
            "INSERT INTO station_zones (kafka_key, station_id, zone_id, max_station_kw, "
            "contract_max_kw, min_active_kw, charging_rate_unit, phases, voltage_v) "
            "VALUES (%s, %s, 'Z', %s, %s, %s, 'W', 3, 230)",
            (sid.encode(), sid, s.max_kw, s.contract, s.min_active),
        )
        if s.load is not None:
            sample(conn, sid, s.load, T0 - timedelta(seconds=5))
    conn.execute(
        "INSERT INTO dr_signals (signal_id, modification, zone_id, signal_type, "
        "zone_limit_kw, start_ts, end_ts, priority, received_ts) "
        "VALUES ('sig', 0, 'Z', %s, %s, %s, %s, 2, %s)",
        (
            "SHED" if shed else "CURTAIL",
            cap,
            T0 - timedelta(seconds=1),
            T0 + timedelta(hours=1),
            T0 - timedelta(seconds=1),
        ),
    )


def sample(conn: psycopg.Connection, sid: str, load: float, at: datetime) -> None:
    conn.execute(
        "INSERT INTO meter_values (station_id, connector_id, session_id, power_kw, event_ts, "
        "received_ts) VALUES (%s, 1, 'x', %s, %s, %s)",
        (sid, load, at, at),
    )


def read(conn: psycopg.Connection, n: int) -> list[float]:
    """Targets now; then the baseline candidates are frozen, as the engine's sink and the
    dr_baselines table do through the bus between two ticks (first row per key wins)."""
    rows = conn.execute(
        "SELECT station_id, target_kw FROM dr_station_targets ORDER BY length(station_id), "
        "station_id"
    ).fetchall()
    assert [r[0] for r in rows] == [f"S{i}" for i in range(n)]
    conn.execute(
        "INSERT INTO dr_baselines (kafka_key, baseline_id, event_key, zone_id, station_id, "
        "baseline_kw, basis, lent_from, effective_ts) SELECT convert_to(baseline_id, 'UTF8'), "
        "baseline_id, event_key, zone_id, station_id, baseline_kw, basis, lent_from, "
        "effective_ts FROM dr_baseline_candidates ON CONFLICT DO NOTHING"
    )
    return [r[1] for r in rows]


def targets(
    conn: psycopg.Connection, stations: list[Station], cap: float, shed: bool
) -> list[float]:
    with conn.transaction():
        setup(conn, stations, cap, shed)
        return read(conn, len(stations))


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
        # 0 (paused) or a limit the charger can follow, never above its ceiling
        assert t == 0.0 or s.min_kw - 1e-9 <= t <= s.ceiling + 1e-9
        assert t >= floor - 1e-9
    if sum(floors) <= cap:
        assert sum(got) <= cap + 1e-9


@SETTINGS
@given(stations=stations_st, cap=kw, shed=st.booleans())
def test_chargers_that_comply_change_nothing(
    db: psycopg.Connection, stations: list[Station], cap: float, shed: bool
) -> None:
    """Every charger draws its target: after one step (a station held at its floor for
    lack of load reports it, which raises its weight) the targets never move again."""
    with db.transaction():
        setup(db, stations, cap, shed)
        seen = [read(db, len(stations))]
        for k in (1, 2, 3):
            at = T0 + timedelta(seconds=10 * k)
            db.execute("UPDATE gridctl_engine.clock SET ts = %s", (at,))
            for i, t in enumerate(seen[-1]):
                sample(db, f"S{i}", t, at)
            seen.append(read(db, len(stations)))
        assert seen[2] == pytest.approx(seen[1], abs=1e-9)
        assert seen[3] == pytest.approx(seen[1], abs=1e-9)


@SETTINGS
@given(stations=stations_st, cap=kw, extra=kw, shed=st.booleans())
def test_raising_the_cap_never_lowers_a_target(
    db: psycopg.Connection, stations: list[Station], cap: float, extra: float, shed: bool
) -> None:
    """Monotone while the same stations are paused. A higher cap never pauses a station
    that charged; when it lets a paused one reach its minimum, that minimum comes from the
    others, whose targets may drop, but the total does not drop by more than one
    quantisation step per station (docs/control-law.md, "what is not monotone")."""
    low = targets(db, stations, cap, shed)
    high = targets(db, stations, cap + extra, shed)
    assert not any(a > 0 and b == 0 for a, b in zip(low, high, strict=True))
    if [t == 0 for t in low] != [t == 0 for t in high]:
        assert sum(high) >= sum(low) - STEP * len(stations) - 1e-9
        return
    for a, b in zip(low, high, strict=True):
        assert b >= a - 1e-9
