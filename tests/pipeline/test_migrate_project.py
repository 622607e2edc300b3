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
