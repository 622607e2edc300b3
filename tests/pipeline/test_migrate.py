"""The runner against a real PostgreSQL (one fresh database per test)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import psycopg
import pytest

from pipeline.migrate import (
    ChecksumError,
    Migrator,
    OrderError,
    StatementError,
    ValidationError,
    VariableError,
    apply,
)
from pipeline.migrate.history import TABLE
from tests.pipeline.test_migrate_helpers import compiler, copy_fixture


def migrator(dsn: str, directory: Path, **vars: str) -> Migrator:
    return Migrator(dsn, directory, vars, compiler=compiler())


def history(dsn: str) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            f"SELECT script, checksum, statements_done, success FROM {TABLE} "
            "ORDER BY installed_rank"
        ).fetchall()


def query_exec(dsn: str, sql: str) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute(sql)


def query(dsn: str, sql: str) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql).fetchall()


def seed(dsn: str) -> None:
    """Rows for the views to read (RisingWave tables take INSERTs too; our SQL has none)."""
    with psycopg.connect(dsn) as conn:
        conn.execute("INSERT INTO zones VALUES ('s1', 'z1'), ('s2', 'z1')")
        conn.execute(
            "INSERT INTO meter VALUES ('s1', 5.0, '2026-01-01T00:00:00Z'), "
            "('s1', 7.0, '2026-01-01T00:00:10Z'), ('s2', 3.0, '2026-01-01T00:00:00Z')"
        )


def tables(dsn: str) -> set[str]:
    rows = query(
        dsn, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
    )
    return {r[0] for r in rows}


def test_up_applies_everything_once_and_is_idempotent(postgres: str, tmp_path: Path) -> None:
    d = copy_fixture(tmp_path)
    assert apply(postgres, d, compiler=compiler()) == "postgres"
    seed(postgres)
    assert query(postgres, "SELECT zone_id, kw FROM zone_load") == [("z1", 15.0)]
    assert query(postgres, "SELECT name, note FROM site") == [
        ("test-site", "a; b -- not a comment")
    ]
    first = history(postgres)
    assert [r[0] for r in first] == [
        "V0001__tables.sql",
        "V0002__site.sql",
        "R__01_site.sql",
        "R__05_sample_count.sql",
        "R__10_station_load.sql",
        "R__20_zone_load.sql",
    ]
    assert all(r[3] for r in first)

    m = migrator(postgres, d)
    assert m.up() == []
    assert history(postgres) == first
    assert {s.state for s in m.status()} == {"applied"}
    assert m.verify() == []
    assert "nothing to do" in m.plan()


def test_var_override_reaches_the_sql(postgres: str, tmp_path: Path) -> None:
    d = copy_fixture(tmp_path)
    migrator(postgres, d, site_name="depot-7").up()
    assert query(postgres, "SELECT name FROM site") == [("depot-7",)]


def test_failed_statement_resumes_there_after_the_fix(postgres: str, tmp_path: Path) -> None:
    d = copy_fixture(tmp_path)
    bad = d / "V0003__extra.sql"
    good_text = (
        "CREATE TABLE extra_a (n INT);\n"
        "CREATE TABLE extra_b (n INT);\n"
        "CREATE INDEX extra_idx ON extra_b (n);\n"
        "CREATE TABLE extra_d (n INT);\n"
    )
    bad.write_text(good_text.replace("ON extra_b", "ON extra_missing"))
    m = migrator(postgres, d)
    with pytest.raises(StatementError) as info:
        m.up()
    msg = str(info.value)
    assert "V0003__extra.sql: statement 3 failed" in msg
    assert "CREATE INDEX extra_idx ON extra_missing (n)" in msg
    assert 'relation "extra_missing" does not exist' in msg
    assert {"extra_a", "extra_b"} <= tables(postgres)
    assert "extra_d" not in tables(postgres)
    states = {s.script: s.state for s in m.status()}
    assert states["V0003__extra.sql"] == "failed at statement 3"
    assert states["R__20_zone_load.sql"] == "pending"  # R files wait for the V files
    assert any("V0003__extra.sql: failed at statement 3" in p for p in m.verify())

    # A marker: if statement 1 ran again, extra_a would come back.
    query_exec(postgres, "DROP TABLE extra_a")
    # Correcting the failed statement (or later ones) is allowed: the run resumes there.
    bad.write_text(good_text)
    assert "resume at statement 3" in m.plan()
    m.up()
    assert "extra_a" not in tables(postgres)
    assert {"extra_b", "extra_d", "zone_load"} <= tables(postgres)
    assert query(postgres, "SELECT indexname FROM pg_indexes WHERE tablename = 'extra_b'") == [
        ("extra_idx",)
    ]
    assert m.verify() == []
    assert [r[2:] for r in history(postgres) if r[0] == "V0003__extra.sql"] == [(4, True)]


def test_failed_file_edited_before_the_failure_is_refused(postgres: str, tmp_path: Path) -> None:
    d = copy_fixture(tmp_path)
    f = d / "V0003__extra.sql"
    f.write_text("CREATE TABLE extra_a (n INT);\nCREATE INDEX i ON nowhere (n);\n")
    m = migrator(postgres, d)
    with pytest.raises(StatementError, match="statement 2"):
        m.up()
    f.write_text("CREATE TABLE extra_a (n BIGINT);\nCREATE INDEX i ON extra_a (n);\n")
    with pytest.raises(ChecksumError, match=r"V0003__extra\.sql"):
        m.up()
    assert "edited before it" in {s.script: s.state for s in m.status()}["V0003__extra.sql"]


def test_edited_versioned_file_is_refused_by_up_and_verify(postgres: str, tmp_path: Path) -> None:
    d = copy_fixture(tmp_path)
    m = migrator(postgres, d)
    m.up()
    before = history(postgres)
    seed = d / "V0001__tables.sql"
    seed.write_text(seed.read_text().replace("zone_id VARCHAR", "zone_id TEXT"))
    (d / "R__20_zone_load.sql").write_text(
        (d / "R__20_zone_load.sql").read_text().replace("SUM(l.kw)", "MAX(l.kw)")
    )
    with pytest.raises(ChecksumError) as info:
        m.up()
    assert info.value.scripts == ["V0001__tables.sql"]
    assert "V0001__tables.sql" in str(info.value)
    assert history(postgres) == before  # nothing else ran either
    problems = m.verify()
    assert "V0001__tables.sql: checksum differs from the applied migration" in problems
    assert {s.script: s.state for s in m.status()}["V0001__tables.sql"] == "changed"


def test_line_endings_do_not_count_as_an_edit(postgres: str, tmp_path: Path) -> None:
    d = copy_fixture(tmp_path)
    m = migrator(postgres, d)
    m.up()
    for f in d.glob("*.sql"):
        f.write_bytes(b"\xef\xbb\xbf" + f.read_bytes().replace(b"\n", b"\r\n"))
    assert m.verify() == []
    assert m.up() == []


def test_edited_repeatable_is_rebuilt_with_its_dependents(postgres: str, tmp_path: Path) -> None:
    d = copy_fixture(tmp_path)
    m = migrator(postgres, d)
    m.up()
    seed(postgres)
    first = history(postgres)
    load = d / "R__10_station_load.sql"
    load.write_text(
        load.read_text().replace("SUM(power_kw) AS kw", "SUM(power_kw) AS kw,\n    COUNT(*) AS n")
    )
    assert [p.split(":")[0] for p in m.verify()] == ["R__10_station_load.sql"]
    states = {s.script: s.state for s in m.status()}
    assert states["R__10_station_load.sql"] == "changed"
    assert states["R__20_zone_load.sql"] == "outdated: reads rebuilt ['station_load']"
    assert states["R__05_sample_count.sql"] == "applied"
    plan = m.plan()
    # dependents dropped first, then re-created after what they read
    assert plan.index("drop MATERIALIZED VIEW zone_load") < plan.index(
        "drop MATERIALIZED VIEW station_load"
    )
    assert plan.index("-- R__10_station_load.sql: rebuild") < plan.index(
        "-- R__20_zone_load.sql: rebuild"
    )
    assert "R__05_sample_count.sql" not in plan

    done = m.up()
    assert [line.split(":")[0] for line in done] == [
        "R__10_station_load.sql",
        "R__20_zone_load.sql",
    ]
    assert query(postgres, "SELECT station_id, kw, n FROM station_load ORDER BY 1") == [
        ("s1", 12.0, 2),
        ("s2", 3.0, 1),
    ]
    assert query(postgres, "SELECT zone_id, kw FROM zone_load") == [("z1", 15.0)]
    after = history(postgres)
    assert after[: len(first)] == first  # history is appended, never rewritten
    assert [r[0] for r in after[len(first) :]] == [
        "R__10_station_load.sql",
        "R__20_zone_load.sql",
    ]
    assert m.up() == [] and m.verify() == []


def test_missing_var_fails_before_anything_changes(postgres: str, tmp_path: Path) -> None:
    d = copy_fixture(tmp_path)
    (d / "R__30_site_limit.sql").write_text(
        "CREATE MATERIALIZED VIEW site_limit AS\nSELECT\n    ${site_limit_kw} AS kw;\n"
    )
    m = migrator(postgres, d)
    with pytest.raises(VariableError) as info:
        m.up()
    assert info.value.script == "R__30_site_limit.sql"
    assert info.value.name == "site_limit_kw"
    assert "R__30_site_limit.sql:3: variable ${site_limit_kw}" in str(info.value)
    assert tables(postgres) == set()  # not even V0001 or the history table
    migrator(postgres, d, site_limit_kw="250").up()
    assert query(postgres, "SELECT kw FROM site_limit") == [(250,)]


def test_unparsable_statement_fails_before_anything_changes(postgres: str, tmp_path: Path) -> None:
    d = copy_fixture(tmp_path)
    (d / "R__30_broken.sql").write_text(
        "CREATE MATERIALIZED VIEW ok AS SELECT 1 AS x;\n"
        "CREATE MATERIALIZED VIEW broken AS SELECT FROM WHERE (;\n"
    )
    with pytest.raises(ValidationError) as info:
        migrator(postgres, d).up()
    assert "R__30_broken.sql: statement 2" in str(info.value)
    assert "CREATE MATERIALIZED VIEW broken" in str(info.value)
    assert tables(postgres) == set()


def test_plan_shows_substituted_and_compiled_sql(postgres: str, tmp_path: Path) -> None:
    d = copy_fixture(tmp_path)
    plan = migrator(postgres, d, min_kw="1.5").plan()
    assert plan.startswith("-- engine: postgres\n")
    assert "WHERE power_kw >= 1.5" in plan
    assert "${" not in plan
    assert "-- V0001__tables.sql: apply (new versioned migration)" in plan
    assert "CREATE MATERIALIZED VIEW" not in plan  # compiled for PostgreSQL
    assert tables(postgres) == set()  # plan changes nothing


def test_renamed_view_is_dropped_and_new_name_created(postgres: str, tmp_path: Path) -> None:
    d = copy_fixture(tmp_path)
    m = migrator(postgres, d)
    m.up()
    for name in ("R__10_station_load.sql", "R__20_zone_load.sql"):
        f = d / name
        f.write_text(f.read_text().replace("station_load", "station_power"))
    m.up()
    assert "station_load" not in tables(postgres)
    assert {"station_power", "zone_load"} <= tables(postgres)


def test_new_versioned_file_below_an_applied_one_is_refused(postgres: str, tmp_path: Path) -> None:
    d = copy_fixture(tmp_path)
    m = migrator(postgres, d)
    m.up()
    (d / "V0001_5__late.sql").write_text("CREATE TABLE late (x INT);\n")
    with pytest.raises(OrderError, match=r"V0001_5__late\.sql: version 0001\.5 is below"):
        m.up()
    assert any("V0001_5__late.sql" in p for p in m.verify())
    assert "late" not in tables(postgres)


def test_concurrent_ups_apply_each_file_once(postgres: str, tmp_path: Path) -> None:
    d = copy_fixture(tmp_path)
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda _: migrator(postgres, d).up(), range(3)))
    assert sorted(len(r) for r in results) == [0, 0, 6]
    assert len(history(postgres)) == 6


def test_rebuild_failing_in_a_dependent_recovers(postgres: str, tmp_path: Path) -> None:
    d = copy_fixture(tmp_path)
    m = migrator(postgres, d)
    m.up()
    seed(postgres)
    load, zone = d / "R__10_station_load.sql", d / "R__20_zone_load.sql"
    original = load.read_text()
    load.write_text(original.replace("AS kw", "AS load_kw"))  # zone_load still reads l.kw
    with pytest.raises(StatementError, match=r"R__20_zone_load\.sql: statement 1 failed"):
        m.up()
    states = {s.script: s.state for s in m.status()}
    assert states["R__10_station_load.sql"] == "applied"
    assert states["R__20_zone_load.sql"] == "failed at statement 1"
    assert "zone_load" not in tables(postgres)

    # Going back to the old text is a change again: both are rebuilt, nothing is lost.
    load.write_text(original)
    m.up()
    assert query(postgres, "SELECT zone_id, kw FROM zone_load") == [("z1", 15.0)]

    # Or fix the reader instead: only it runs.
    load.write_text(original.replace("AS kw", "AS load_kw"))
    zone.write_text(zone.read_text().replace("l.kw", "l.load_kw"))
    done = [line.split(":")[0] for line in m.up()]
    assert done == ["R__10_station_load.sql", "R__20_zone_load.sql"]
    assert query(postgres, "SELECT zone_id, kw FROM zone_load") == [("z1", 15.0)]
    assert m.verify() == []


def test_plain_sink_over_an_updating_view_fails_before_anything_changes(
    postgres: str, tmp_path: Path
) -> None:
    d = copy_fixture(tmp_path)
    # station_load (fixture R__10) is a GROUP BY: it updates rows; RisingWave refuses a
    # PLAIN sink over it unless force_append_only says updates may become new records.
    sink = (
        "CREATE SINK load_sink FROM station_load WITH (connector = 'kafka', topic = 'x', "
        "properties.bootstrap.server = 'embedded') FORMAT PLAIN ENCODE JSON{}"
    )
    (d / "R__30_sink.sql").write_text(sink.format(""))
    with pytest.raises(ValidationError) as info:
        migrator(postgres, d).up()
    assert "R__30_sink.sql: statement 1" in str(info.value)
    assert "[plain-sink-not-append-only]" in str(info.value)
    assert tables(postgres) == set()
    (d / "R__30_sink.sql").write_text(sink.format(" (force_append_only = 'true')"))
    migrator(postgres, d).up()
    assert query(postgres, "SELECT name FROM gridctl_engine.sinks") == [("load_sink",)]


def _compiler_as_of(version: str | None) -> SimpleNamespace:
    """The real compiler, claiming ``version`` (None: one from before versions existed)."""
    real = compiler()
    parts = {
        "BOOTSTRAP_SQL": real.BOOTSTRAP_SQL,
        "compile_statement": real.compile_statement,
        "compile_drop": real.compile_drop,
    }
    return SimpleNamespace(**parts, **({} if version is None else {"COMPILER_VERSION": version}))


R_FILES = [
    "R__01_site.sql",
    "R__05_sample_count.sql",
    "R__10_station_load.sql",
    "R__20_zone_load.sql",
]


@pytest.mark.parametrize("old", [None, "1111"], ids=["unversioned", "older"])
def test_new_compiler_rebuilds_repeatables_once_and_never_versioned(
    postgres: str, tmp_path: Path, old: str | None
) -> None:
    d = copy_fixture(tmp_path)
    Migrator(postgres, d, {}, compiler=_compiler_as_of(old)).up()
    seed(postgres)
    first = history(postgres)

    m = Migrator(postgres, d, {}, compiler=compiler())  # the real one: its own version
    states = {s.script: s.state for s in m.status()}
    assert states == {
        "V0001__tables.sql": "applied",
        "V0002__site.sql": "applied",
        **dict.fromkeys(R_FILES, "changed"),
    }
    assert [p.split(":")[0] for p in m.verify()] == R_FILES  # "up rebuilds it", no V file
    assert [line.split(":")[0] for line in m.up()] == R_FILES
    after = history(postgres)
    assert after[: len(first)] == first
    assert [r[0] for r in after[len(first) :]] == R_FILES
    assert query(postgres, "SELECT zone_id, kw FROM zone_load") == [("z1", 15.0)]  # 12 + 3
    assert m.up() == [] and m.verify() == []
    # The same compiler again, or RisingWave's rule (no version): nothing more to do.
    assert Migrator(postgres, d, {}, compiler=compiler()).up() == []


def test_compiler_version_is_a_hash_of_its_source_and_sqlglot(tmp_path: Path) -> None:
    import shutil

    import sqlglot

    from pipeline.compiler import version

    package = Path(version.__file__).parent
    copy = tmp_path / "compiler"
    shutil.copytree(package, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert version.source_hash(copy, sqlglot.__version__) == version.COMPILER_VERSION
    assert version.source_hash(copy, "0.0.0") != version.COMPILER_VERSION  # another sqlglot
    query_py = copy / "query.py"
    query_py.write_text(query_py.read_text() + "\n# changed\n")
    assert version.source_hash(copy, sqlglot.__version__) != version.COMPILER_VERSION
