"""The linter: one bad example per rule in lint_cases/, clean fixtures, and migrations/."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.migrate import RULES, Finding, lint_dir, lint_text

CASES = Path(__file__).parent / "lint_cases"
FIXTURE = Path(__file__).parent / "migrations_fixture"
MIGRATIONS = Path(__file__).parents[2] / "migrations"


def _case_rule(path: Path) -> str:
    """``R__round_double.sql`` holds the bad example of rule ``round-double``."""
    if not path.name.startswith("R__"):
        return "naming"
    return path.stem.removeprefix("R__").replace("_", "-")


@pytest.fixture(scope="module")
def findings() -> dict[str, list[Finding]]:
    out: dict[str, list[Finding]] = {}
    for f in lint_dir(CASES):
        out.setdefault(f.script, []).append(f)
    return out


def test_every_rule_has_a_bad_example() -> None:
    assert {_case_rule(p) for p in CASES.glob("*.sql")} == set(RULES)


@pytest.mark.parametrize("path", sorted(CASES.glob("*.sql")), ids=lambda p: p.name)
def test_bad_example_fails_naming_file_statement_and_rule(
    path: Path, findings: dict[str, list[Finding]]
) -> None:
    rule = _case_rule(path)
    got = findings.get(path.name, [])
    assert [f.rule for f in got] == [rule]
    finding = got[0]
    if rule != "naming":
        # statement 1 of every case is clean; statement 2 is the bad one, starting at line 10
        assert (finding.statement, finding.line) == (2, 10)
        assert str(finding).startswith(f"{path.name}:10: statement 2: [{rule}] ")
    assert finding.message


def test_clean_fixture_has_no_findings() -> None:
    assert lint_dir(FIXTURE) == []


@pytest.mark.skipif(not any(MIGRATIONS.glob("*.sql")), reason="migrations/ not written yet")
def test_project_migrations_pass_lint() -> None:
    assert [str(f) for f in lint_dir(MIGRATIONS)] == []


SOURCE = (
    "CREATE SOURCE m (station_id VARCHAR, power_kw DOUBLE PRECISION, event_ts TIMESTAMPTZ, "
    "WATERMARK FOR event_ts AS event_ts - INTERVAL '10 SECONDS') WITH (connector = 'kafka', "
    "topic = 'm', properties.bootstrap.server = '${kafka_bootstrap}') FORMAT PLAIN ENCODE JSON;\n"
    "CREATE TABLE z (station_id VARCHAR PRIMARY KEY, zone_id VARCHAR);\n"
)


@pytest.mark.parametrize(
    "sql",
    [
        # a temporal filter on the growing side of a join / an aggregation
        "CREATE MATERIALIZED VIEW a AS SELECT z.zone_id, SUM(m.power_kw) AS kw FROM m "
        "JOIN z ON z.station_id = m.station_id "
        "WHERE m.event_ts > NOW() - INTERVAL '2 MINUTES' GROUP BY z.zone_id",
        "CREATE MATERIALIZED VIEW a AS SELECT station_id, MAX(event_ts) AS t FROM m "
        "WHERE event_ts >= NOW() - INTERVAL '1 HOUR' GROUP BY station_id",
        # a watermarked window under EOWC, joined by a process-time temporal join
        "CREATE MATERIALIZED VIEW a AS SELECT z.zone_id, w.window_start, w.window_end, "
        "AVG(w.power_kw) AS kw FROM TUMBLE(m, event_ts, INTERVAL '1 MINUTE') AS w "
        "JOIN z FOR SYSTEM_TIME AS OF PROCTIME() ON z.station_id = w.station_id "
        "GROUP BY z.zone_id, w.window_start, w.window_end EMIT ON WINDOW CLOSE",
        # a process-time lookup of each closed window: no state for the stream side
        "CREATE MATERIALIZED VIEW w AS SELECT station_id, window_start, window_end, "
        "AVG(power_kw) AS kw FROM TUMBLE(m, event_ts, INTERVAL '1 MINUTE') "
        "GROUP BY station_id, window_start, window_end EMIT ON WINDOW CLOSE;\n"
        "CREATE MATERIALIZED VIEW a AS SELECT w.station_id, z.zone_id, w.kw FROM w "
        "JOIN z FOR SYSTEM_TIME AS OF PROCTIME() ON z.station_id = w.station_id",
        # keyed by station, not time: one state row per station (append-only input)
        "CREATE MATERIALIZED VIEW a AS SELECT station_id, AVG(power_kw) AS kw FROM m "
        "GROUP BY station_id",
        # no state: a projection; a PLAIN sink over an append-only view
        "CREATE MATERIALIZED VIEW a AS SELECT station_id, power_kw FROM m WHERE power_kw > 0;\n"
        "CREATE SINK k FROM a WITH (connector = 'kafka', topic = 'k', "
        "properties.bootstrap.server = '${kafka_bootstrap}') FORMAT PLAIN ENCODE JSON",
        # a PLAIN sink over an updating view that says force_append_only
        "CREATE MATERIALIZED VIEW a AS SELECT station_id, COUNT(*) AS n FROM z GROUP BY 1;\n"
        "CREATE SINK k FROM a WITH (connector = 'kafka', topic = 'k', "
        "properties.bootstrap.server = '${kafka_bootstrap}') "
        "FORMAT PLAIN ENCODE JSON (force_append_only = 'true')",
    ],
)
def test_bounded_state_forms_have_no_findings(sql: str) -> None:
    assert lint_text("R__ok.sql", SOURCE + sql) == []


@pytest.mark.parametrize(
    ("sql", "rule"),
    [
        # an aggregation keyed by time over every sample ever seen
        ("CREATE MATERIALIZED VIEW a AS SELECT station_id, event_ts, AVG(power_kw) FROM m "
         "GROUP BY station_id, event_ts", "unbounded-state"),
        # a windowed aggregation without EOWC: RisingWave keeps every window
        ("CREATE MATERIALIZED VIEW a AS SELECT station_id, window_start, AVG(power_kw) AS kw "
         "FROM TUMBLE(m, event_ts, INTERVAL '1 MINUTE') GROUP BY station_id, window_start",
         "unbounded-state"),
        # EOWC, but a regular join keeps the stream side's state
        ("CREATE MATERIALIZED VIEW a AS SELECT z.zone_id, w.window_end, AVG(w.power_kw) AS kw "
         "FROM TUMBLE(m, event_ts, INTERVAL '1 MINUTE') AS w JOIN z ON z.station_id = w.station_id "
         "GROUP BY z.zone_id, w.window_end EMIT ON WINDOW CLOSE",
         "unbounded-state"),
        # the filter is on the other side of the join
        ("CREATE MATERIALIZED VIEW a AS SELECT z.zone_id, m.power_kw FROM m JOIN z "
         "ON z.station_id = m.station_id AND z.updated_ts > NOW() - INTERVAL '1 MINUTE'",
         "unbounded-state"),
    ],
)  # fmt: skip
def test_unbounded_state_forms(sql: str, rule: str) -> None:
    found = lint_text("R__bad.sql", SOURCE + sql)
    assert [(f.rule, f.statement) for f in found] == [(rule, 3)]


@pytest.mark.parametrize(
    "sql",
    [
        # temporal filters where RisingWave allows them
        "CREATE MATERIALIZED VIEW a AS SELECT x FROM t JOIN u ON t.k = u.k "
        "AND u.ts > NOW() - INTERVAL '1 MINUTE'",
        "CREATE MATERIALIZED VIEW a AS SELECT k, COUNT(*) FROM t GROUP BY k "
        "HAVING MAX(ts) > NOW() - INTERVAL '1 MINUTE'",
        "CREATE MATERIALIZED VIEW a AS SELECT x FROM t WHERE NOW() BETWEEN start_ts AND end_ts",
        # NUMERIC by construction
        "CREATE MATERIALIZED VIEW a AS SELECT ROUND(x::NUMERIC, 2)::DOUBLE PRECISION AS r FROM t",
        "CREATE MATERIALIZED VIEW a AS SELECT ROUND((n::NUMERIC / total), 3) AS r FROM t",
        "CREATE MATERIALIZED VIEW a AS SELECT ROUND(x) AS r FROM t",
        # clauses sqlglot does not know are taken off before parsing
        "CREATE TABLE dr (signal_id VARCHAR PRIMARY KEY, modification INT) "
        "ON CONFLICT OVERWRITE WITH VERSION COLUMN(modification) "
        "WITH (connector = 'kafka', topic = 'grid.demand_response', "
        "properties.bootstrap.server = '${kafka_bootstrap}') FORMAT PLAIN ENCODE JSON",
        "CREATE MATERIALIZED VIEW w AS SELECT window_start, COUNT(*) AS n "
        "FROM TUMBLE(m, ts, INTERVAL '1 MINUTE') GROUP BY window_start EMIT ON WINDOW CLOSE",
        # a port-like string that is not an option value is not a host
        "CREATE MATERIALIZED VIEW a AS SELECT 'at 10:30' AS note FROM t",
        "CREATE MATERIALIZED VIEW a AS SELECT x FROM t WHERE station_id = 'CP-1:01'",
    ],
)
def test_allowed_forms_have_no_findings(sql: str) -> None:
    assert lint_text("R__ok.sql", sql) == []


@pytest.mark.parametrize(
    ("sql", "rule"),
    [
        ("CREATE MATERIALIZED VIEW a AS SELECT k FROM t GROUP BY k, NOW()", "now-outside-filter"),
        (
            "CREATE MATERIALIZED VIEW a AS SELECT ROUND(x::DOUBLE PRECISION, 1) FROM t",
            "round-double",
        ),
        ("CREATE MATERIALIZED VIEW a AS SELECT ROUND(x::NUMERIC * 1.5, 1) FROM t", "round-double"),
        (
            "CREATE SOURCE s (a INT) WITH (connector = 'kafka', "
            "properties.bootstrap.server = '127.0.0.1') FORMAT PLAIN ENCODE JSON",
            "host-literal",
        ),
        (
            "CREATE SOURCE s (a INT) WITH (connector = 'kafka', "
            "properties.bootstrap.server = 'localhost') FORMAT PLAIN ENCODE JSON",
            "host-literal",
        ),
    ],
)
def test_more_bad_forms(sql: str, rule: str) -> None:
    assert [f.rule for f in lint_text("R__bad.sql", sql)] == [rule]
