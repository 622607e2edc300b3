"""``migrations/`` itself, applied to a real PostgreSQL through the real compiler."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import psycopg
import pytest

from pipeline.migrate import Migrator, VariableError, apply

MIGRATIONS = Path(__file__).parents[2] / "migrations"
VARS = {"kafka_bootstrap": "embedded"}

pytestmark = [
    pytest.mark.skipif(not any(MIGRATIONS.glob("*.sql")), reason="migrations/ not written yet"),
    pytest.mark.skipif(
        importlib.util.find_spec("pipeline.compiler") is None, reason="no pipeline.compiler yet"
    ),
]


def test_project_migrations_apply_and_are_idempotent(postgres: str) -> None:
    assert apply(postgres, MIGRATIONS, VARS) == "postgres"
    m = Migrator(postgres, MIGRATIONS, VARS)
    assert {s.state for s in m.status()} == {"applied"}
    assert m.verify() == []
    assert m.up() == []
    scripts = sorted(p.name for p in MIGRATIONS.glob("*.sql"))
    with psycopg.connect(postgres) as conn:
        rows = conn.execute(
            "SELECT script FROM gridctl_schema_history WHERE success ORDER BY script"
        ).fetchall()
    assert [r[0] for r in rows] == scripts


def test_project_migrations_need_the_bootstrap_servers(postgres: str) -> None:
    with pytest.raises(VariableError, match="kafka_bootstrap"):
        apply(postgres, MIGRATIONS, {})


def test_editing_current_load_rebuilds_exactly_its_readers(postgres: str, tmp_path: Path) -> None:
    d = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, d)
    m = Migrator(postgres, d, VARS)
    m.up()
    f = d / "R__10_current_load.sql"
    f.write_text(f.read_text() + "\n-- edited\n")
    done = [line.split(":")[0] for line in m.up()]
    # R__20 reads station_load; R__30 reads R__20's caps; R__50's station overview reads
    # R__20's commands; R__90's sinks read both. R__40 reads only the sources, so it stays.
    assert done == [
        "R__10_current_load.sql",
        "R__20_dr_allocation.sql",
        "R__30_alerts.sql",
        "R__50_stations.sql",
        "R__90_sinks.sql",
    ]
    assert m.verify() == []
    with psycopg.connect(postgres) as conn:
        assert conn.execute("SELECT count(*) FROM zone_load").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM dr_commands").fetchone() == (0,)


RELEASED = Path(__file__).parent / "released_fixture"


def _status_rows(conn: psycopg.Connection) -> list[tuple]:
    return conn.execute(
        "SELECT station_id, connector_id, evse_connector_id, status FROM connector_status "
        "ORDER BY station_id, connector_id, evse_connector_id"
    ).fetchall()


def test_upgrade_moves_connector_status_from_r50_into_r20(postgres: str, tmp_path: Path) -> None:
    # As released (main at 3f7b857): R__50 defined connector_status and R__20 computed the
    # latest status per connector again; no V0013. Upgrading adds the column (V0013) and
    # rebuilds R__20 (which now defines connector_status) and everything that reads it.
    d = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, d)
    (d / "V0013__station_status_evse_connector.sql").unlink()
    for name in ("R__20_dr_allocation.sql", "R__50_stations.sql"):
        shutil.copy(RELEASED / name, d / name)
    Migrator(postgres, d, VARS).up()
    with psycopg.connect(postgres, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO station_status (station_id, event, connector_id, status, ts) VALUES "
            "('A', 'StatusNotification', 1, 'Charging', '2026-01-05T12:00:00Z'), "
            "('B', 'StatusNotification', 1, 'Occupied', '2026-01-05T12:00:00Z')"
        )
        assert conn.execute(
            "SELECT station_id, status FROM connector_status ORDER BY 1"
        ).fetchall() == [
            ("A", "Charging"),
            ("B", "Occupied"),
        ]

    for f in MIGRATIONS.glob("*.sql"):
        shutil.copy(f, d / f.name)
    m = Migrator(postgres, d, VARS)
    plan = m.plan()
    # The released connector_status (R__50's) is dropped with its readers before R__20
    # creates it again.
    assert plan.index("drop MATERIALIZED VIEW connector_status") < plan.index(
        "-- R__20_dr_allocation.sql: rebuild"
    )
    done = [line.split(":")[0] for line in m.up()]
    assert done == [
        "V0013__station_status_evse_connector.sql",
        "R__20_dr_allocation.sql",
        "R__30_alerts.sql",
        "R__50_stations.sql",
        "R__90_sinks.sql",
    ]
    assert m.verify() == [] and {s.state for s in m.status()} == {"applied"}
    with psycopg.connect(postgres, autocommit=True) as conn:
        # Rows from before the column existed read as their EVSE's connector 1.
        assert _status_rows(conn) == [("A", 1, None, "Charging"), ("B", 1, None, "Occupied")]
        conn.execute(
            "INSERT INTO station_status (station_id, event, connector_id, evse_connector_id, "
            "status, ts) VALUES "
            "('B', 'StatusNotification', 1, 1, 'Available', '2026-01-05T12:00:10Z'), "
            "('B', 'StatusNotification', 1, 2, 'Occupied', '2026-01-05T12:00:11Z')"
        )
        assert _status_rows(conn) == [
            ("A", 1, None, "Charging"),
            ("B", 1, 1, "Available"),
            ("B", 1, 2, "Occupied"),
        ]
    with psycopg.connect(postgres) as conn:
        owners = conn.execute(
            "SELECT DISTINCT ON (script) script, objects FROM gridctl_schema_history "
            "WHERE script IN ('R__20_dr_allocation.sql', 'R__50_stations.sql') "
            "ORDER BY script, installed_rank DESC"
        ).fetchall()
    objects = {script: set(text.split(";")) for script, text in owners}
    assert "MATERIALIZED VIEW:connector_status" in objects["R__20_dr_allocation.sql"]
    assert not any("connector_status" in o for o in objects["R__50_stations.sql"])
    # So editing R__50 alone rebuilds R__50 alone, and connector_status stays.
    f = d / "R__50_stations.sql"
    f.write_text(f.read_text() + "\n-- edited\n")
    assert [line.split(":")[0] for line in m.up()] == ["R__50_stations.sql"]
    with psycopg.connect(postgres) as conn:
        assert len(_status_rows(conn)) == 3
