"""The runner against a real RisingWave (skipped where none is reachable: see the fixture).

RisingWave gets the original text, its DDL is not transactional and it has no CREATE OR
REPLACE, so this is where the statement progress and the drop-and-recreate rebuild matter.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pipeline.migrate import Migrator, StatementError, apply
from tests.pipeline.test_migrate_helpers import copy_fixture

pytestmark = pytest.mark.risingwave


@pytest.fixture
def rw_db(risingwave: str) -> Iterator[str]:
    """A fresh RisingWave database for one test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(risingwave, autocommit=True, prepare_threshold=None) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    params = conninfo_to_dict(risingwave)
    params["dbname"] = name
    try:
        yield make_conninfo(**params)
    finally:
        with psycopg.connect(risingwave, autocommit=True, prepare_threshold=None) as conn:
            conn.execute(f"DROP DATABASE {name}")


def _rw_query(dsn: str, sql: str) -> list[tuple]:
    with psycopg.connect(dsn, autocommit=True, prepare_threshold=None) as conn:
        conn.execute("FLUSH")
        return conn.execute(sql).fetchall()


def test_fixture_migrations_apply_verbatim_and_rebuild(rw_db: str, tmp_path: Path) -> None:
    d = copy_fixture(tmp_path)
    assert apply(rw_db, d) == "risingwave"
    with psycopg.connect(rw_db, autocommit=True, prepare_threshold=None) as conn:
        conn.execute("INSERT INTO zones VALUES ('s1', 'z1'), ('s2', 'z1')")
        conn.execute("INSERT INTO meter VALUES ('s1', 5.0, '2026-01-01T00:00:00Z')")
    m = Migrator(rw_db, d)
    assert m.up() == [] and m.verify() == []
    f = d / "R__10_station_load.sql"
    f.write_text(f.read_text().replace("SUM(power_kw) AS kw", "SUM(power_kw) AS kw, COUNT(*) AS n"))
    assert "DROP MATERIALIZED VIEW IF EXISTS zone_load;" in m.plan()
    assert [line.split(":")[0] for line in m.up()] == [
        "R__10_station_load.sql",
        "R__20_zone_load.sql",
    ]
    assert _rw_query(rw_db, "SELECT station_id, kw, n FROM station_load") == [("s1", 5.0, 1)]
    assert _rw_query(rw_db, "SELECT zone_id, kw FROM zone_load") == [("z1", 5.0)]


def test_failed_statement_resumes_on_risingwave(rw_db: str, tmp_path: Path) -> None:
    d = copy_fixture(tmp_path)
    bad = d / "V0003__extra.sql"
    bad.write_text(
        "CREATE TABLE extra_a (n INT);\nCREATE INDEX extra_idx ON extra_missing (n);\n"
        "CREATE TABLE extra_c (n INT);\n"
    )
    m = Migrator(rw_db, d)
    with pytest.raises(StatementError, match=r"V0003__extra\.sql: statement 2 failed"):
        m.up()
    bad.write_text(bad.read_text().replace("extra_missing", "extra_a"))
    m.up()
    assert {s.state for s in m.status()} == {"applied"}
