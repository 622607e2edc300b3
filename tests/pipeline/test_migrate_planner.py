"""The planner and the dependency analysis, without a database (files and history rows in)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.migrate import ChecksumError, DependencyError, OrderError
from pipeline.migrate.deps import DbObject, analyze
from pipeline.migrate.files import MigrationFile, parse_name
from pipeline.migrate.history import HistoryRow, encode_objects
from pipeline.migrate.planner import APPLY, REBUILD, RESUME, make_plan, prefix_checksum


def mf(name: str, text: str) -> MigrationFile:
    kind, version, desc = parse_name(name)
    return MigrationFile(Path(name), kind, version, desc, text)


def applied(f: MigrationFile, done: int | None = None, text: str | None = None) -> HistoryRow:
    """A history row for ``f`` as applied (or failed after ``done`` statements of ``text``)."""
    src = mf(f.script, text) if text is not None else f
    n = len(src.statements) if done is None else done
    return HistoryRow(
        installed_rank=1,
        version=f.version,
        description=f.description,
        type=f.type,
        script=f.script,
        checksum=src.checksum,
        statements_done=n,
        statements_total=len(src.statements),
        prefix_checksum=prefix_checksum([s.text for s in src.statements[:n]]),
        objects=encode_objects([o for s in src.statements for o in analyze(s.text).created]),
        installed_on=None,
        execution_time=0,
        success=done is None,
        error=None if done is None else "boom",
    )


V1 = mf("V1__t.sql", "CREATE TABLE t (k VARCHAR PRIMARY KEY, x INT);")
A = mf("R__a.sql", "CREATE MATERIALIZED VIEW a AS SELECT k, x FROM t;")
B = mf("R__b.sql", "CREATE MATERIALIZED VIEW b AS SELECT k FROM a;")
C = mf("R__c.sql", "CREATE MATERIALIZED VIEW c AS SELECT k FROM t;")
S = mf(
    "R__0_sink.sql",  # sorts first by name, but reads b: runs last
    "CREATE SINK s FROM b WITH (connector = 'kafka', topic = 'x', "
    "properties.bootstrap.server = '${kafka}', primary_key = 'k') FORMAT UPSERT ENCODE JSON;",
)
ALL = [V1, S, A, B, C]


def history_of(*files: MigrationFile) -> dict[str, HistoryRow]:
    return {f.script: applied(f) for f in files}


def test_deps_reads_tables_windows_ctes_and_sinks() -> None:
    d = analyze(
        "CREATE MATERIALIZED VIEW w AS WITH x AS (SELECT * FROM a) "
        "SELECT * FROM TUMBLE(b, ts, INTERVAL '1 MINUTE') JOIN x ON TRUE "
        "WHERE k IN (SELECT k FROM c) EMIT ON WINDOW CLOSE"
    )
    assert d.created == [DbObject("MATERIALIZED VIEW", "w")]
    assert d.references == {"a", "b", "c"}
    assert analyze(S.statements[0].text).references == {"b"}
    assert analyze("CREATE INDEX i ON t (k)").created == [DbObject("INDEX", "i")]


def test_fresh_database_runs_all_with_r_files_after_what_they_read() -> None:
    plan = make_plan(ALL, {})
    assert [(s.file.script, s.action) for s in plan.steps] == [
        ("V1__t.sql", APPLY),
        ("R__a.sql", APPLY),
        ("R__b.sql", APPLY),
        ("R__0_sink.sql", APPLY),
        ("R__c.sql", APPLY),
    ]
    assert plan.drops == []


def test_up_to_date_plan_is_empty() -> None:
    assert make_plan(ALL, history_of(*ALL)).empty


def test_changed_r_rebuilds_readers_transitively_not_others() -> None:
    a2 = mf("R__a.sql", "CREATE MATERIALIZED VIEW a AS SELECT k, x + 1 AS x FROM t;")
    plan = make_plan([V1, S, a2, B, C], history_of(*ALL))
    assert [o.name for o in plan.drops] == ["s", "b", "a"]
    assert [(s.file.script, s.action) for s in plan.steps] == [
        ("R__a.sql", REBUILD),
        ("R__b.sql", REBUILD),
        ("R__0_sink.sql", REBUILD),
    ]


def test_objects_no_longer_defined_are_dropped_too() -> None:
    a2 = mf("R__a.sql", "CREATE MATERIALIZED VIEW a2 AS SELECT k, x FROM t;")
    b2 = mf("R__b.sql", "CREATE MATERIALIZED VIEW b AS SELECT k FROM a2;")
    plan = make_plan([V1, a2, b2], history_of(V1, A, B))
    assert {o.name for o in plan.drops} == {"a", "a2", "b"}
    assert plan.drops.index(DbObject("MATERIALIZED VIEW", "b")) < plan.drops.index(
        DbObject("MATERIALIZED VIEW", "a2")
    )


def test_failed_v_resumes_and_may_be_corrected_after_the_failure_only() -> None:
    text = "CREATE TABLE u1 (x INT);\nCREATE TABLE u2 (x INT);\nCREATE INDEX i ON nope (x);"
    v2 = mf("V2__u.sql", text)
    latest = {**history_of(V1), "V2__u.sql": applied(v2, done=2)}
    step = make_plan([V1, v2], latest).steps[0]
    assert (step.file.script, step.action, step.start) == ("V2__u.sql", RESUME, 2)

    fixed = mf("V2__u.sql", text.replace("nope", "u2"))
    step = make_plan([V1, fixed], latest).steps[0]
    assert (step.action, step.start) == (RESUME, 2)
    assert "corrected" in step.reason

    meddled = mf("V2__u.sql", text.replace("u1 (x INT)", "u1 (x BIGINT)"))
    with pytest.raises(ChecksumError) as info:
        make_plan([V1, meddled], latest)
    assert info.value.scripts == ["V2__u.sql"]


def test_edited_v_refused_naming_every_file() -> None:
    v1 = mf("V1__t.sql", "CREATE TABLE t (k VARCHAR PRIMARY KEY, x BIGINT);")
    v2 = mf("V2__u.sql", "CREATE TABLE u (x INT);")
    latest = history_of(V1, mf("V2__u.sql", "CREATE TABLE u (y INT);"))
    with pytest.raises(ChecksumError) as info:
        make_plan([v1, v2], latest)
    assert info.value.scripts == ["V1__t.sql", "V2__u.sql"]


def test_v_object_reading_a_rebuilt_view_is_an_error() -> None:
    v2 = mf("V2__idx.sql", "CREATE TABLE snap AS SELECT * FROM a;")
    a2 = mf("R__a.sql", "CREATE MATERIALIZED VIEW a AS SELECT k FROM t;")
    with pytest.raises(DependencyError, match="snap"):
        make_plan([V1, v2, a2], history_of(V1, v2, A))


def test_out_of_order_version_is_refused() -> None:
    v0 = mf("V0_5__early.sql", "CREATE TABLE e (x INT);")
    with pytest.raises(OrderError, match=r"V0_5__early\.sql"):
        make_plan([v0, V1], history_of(V1))


def test_cycle_between_r_files_is_reported() -> None:
    x = mf("R__x.sql", "CREATE MATERIALIZED VIEW x AS SELECT * FROM y;")
    y = mf("R__y.sql", "CREATE MATERIALIZED VIEW y AS SELECT * FROM x;")
    with pytest.raises(DependencyError, match="cycle"):
        make_plan([x, y], {})


def test_r_interrupted_before_its_first_statement_is_rebuilt() -> None:
    # A rebuild records its attempt (0 statements done) before dropping anything.
    latest = {**history_of(*ALL), "R__b.sql": applied(B, done=0)}
    plan = make_plan(ALL, latest)
    assert [o.name for o in plan.drops] == ["s", "b"]
    assert [(s.file.script, s.action) for s in plan.steps] == [
        ("R__b.sql", REBUILD),
        ("R__0_sink.sql", REBUILD),
    ]


def test_r_failed_part_way_resumes_at_the_failed_statement() -> None:
    two = mf("R__c.sql", C.text + "\nCREATE MATERIALIZED VIEW c2 AS SELECT k FROM c;")
    latest = {**history_of(*ALL), "R__c.sql": applied(two, done=1)}
    plan = make_plan([V1, S, A, B, two], latest)
    assert plan.drops == []
    assert [(s.file.script, s.action, s.start) for s in plan.steps] == [("R__c.sql", RESUME, 1)]
