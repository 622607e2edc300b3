"""The RisingWave -> PostgreSQL compiler: pure translation checks, errors that name the
statement, and the compiled SQL executed on a real PostgreSQL."""

from __future__ import annotations

from datetime import datetime

import psycopg
import pytest

from pipeline.compiler import BOOTSTRAP_SQL, CompileError, compile_drop, compile_statement
from pipeline.engine import apply_migrations, compiled_statements

SOURCE = """
-- samples
CREATE SOURCE mv_src (
    station_id VARCHAR,
    power_kw DOUBLE PRECISION,
    event_ts TIMESTAMPTZ,
    -- gridctl: index (station_id, event_ts)
    WATERMARK FOR event_ts AS event_ts - INTERVAL '5 SECONDS'
)
WITH (
    connector = 'kafka',
    topic = 'ocpp.meter_values',
    properties.bootstrap.server = 'k:9092'
)
FORMAT PLAIN ENCODE JSON
"""


def test_source_becomes_table_with_catalog_row_and_indexes() -> None:
    out = compile_statement(SOURCE)
    assert out[0].startswith('CREATE TABLE IF NOT EXISTS "mv_src" (')
    assert '"power_kw" DOUBLE PRECISION' in out[0]
    assert '"station_id" TEXT' in out[0]
    assert any('ON "mv_src" ("station_id", "event_ts")' in s for s in out)
    assert any('ON "mv_src" ("event_ts")' in s for s in out)
    catalog = out[-1]
    assert "INSERT INTO gridctl_engine.sources" in catalog
    assert "'ocpp.meter_values'" in catalog and "'PLAIN'" in catalog
    assert "'5 SECONDS'::INTERVAL" in catalog
    assert "TRUE, " in catalog  # append-only


def test_table_with_version_column_and_upsert_table() -> None:
    versioned = compile_statement(
        "CREATE TABLE sig (signal_id VARCHAR PRIMARY KEY, modification BIGINT) "
        "ON CONFLICT OVERWRITE WITH VERSION COLUMN(modification) "
        "WITH (connector = 'kafka', topic = 't') FORMAT PLAIN ENCODE JSON"
    )
    assert 'PRIMARY KEY ("signal_id")' in versioned[0]
    assert "'modification'" in versioned[-1]
    assert "ARRAY['signal_id']" in versioned[-1]
    upsert = compile_statement(
        "CREATE TABLE z (station_id VARCHAR, zone_id VARCHAR, PRIMARY KEY (kafka_key)) "
        "INCLUDE KEY AS kafka_key WITH (connector = 'kafka', topic = 'z') "
        "FORMAT UPSERT ENCODE JSON"
    )
    assert '"kafka_key" BYTEA' in upsert[0]
    assert "'UPSERT'" in upsert[-1] and "'kafka_key'" in upsert[-1]


def test_view_rewrites_tumble_now_and_temporal_join() -> None:
    sql, *_ = compile_statement(
        "CREATE VIEW v AS SELECT m.station_id, window_start, COUNT(*) AS n "
        "FROM TUMBLE(src, event_ts, INTERVAL '1 MINUTE') AS m "
        "JOIN zones FOR SYSTEM_TIME AS OF PROCTIME() AS z ON m.station_id = z.station_id "
        "WHERE m.event_ts > NOW() - INTERVAL '2 MINUTES' GROUP BY 1, 2"
    )
    assert "DATE_BIN(INTERVAL '60 SECONDS', w.event_ts" in sql
    assert "gridctl_engine.now()" in sql
    assert "CURRENT_TIMESTAMP" not in sql and "NOW()" not in sql.upper().replace("ENGINE.NOW()", "")
    assert "FOR " not in sql.replace("FORMAT", "")
    assert "TUMBLE" not in sql.upper()


def test_materialized_views_eowc_and_cached() -> None:
    eowc = compile_statement(
        "CREATE MATERIALIZED VIEW w AS SELECT k, window_start, window_end, SUM(x) AS s "
        "FROM TUMBLE(src, ts, INTERVAL '1 MINUTE') GROUP BY k, window_start, window_end "
        "EMIT ON WINDOW CLOSE"
    )
    assert any('gridctl_engine."w__closed"' in s and "WITH NO DATA" in s for s in eowc)
    assert any(
        s.startswith('CREATE VIEW "w" AS SELECT * FROM gridctl_engine."w__closed"') for s in eowc
    )
    assert "'eowc'" in _view_row(eowc) and "ARRAY['src']" in _view_row(eowc)
    cached = compile_statement(
        "CREATE MATERIALIZED VIEW c AS SELECT k, SUM(x) AS s FROM t GROUP BY k"
    )
    # the tick stores name__eval (reading the views below through their tick relations)
    # in name__cache, and readers in the tick read name__tick; the view itself reads the
    # cache while the tick maintains it, else its query
    assert (
        'CREATE VIEW "c" AS SELECT * FROM gridctl_engine."c__tick" WHERE '
        "gridctl_engine.maintained('c') UNION ALL SELECT * FROM gridctl_engine.\"c__live\" "
        "WHERE NOT gridctl_engine.maintained('c')"
    ) in cached
    assert any('"c__eval"' in s and "tick_sql(" in s for s in cached)
    assert 'CREATE VIEW gridctl_engine."c__tick" AS SELECT * FROM gridctl_engine."c__cache"' in (
        cached
    )
    plain = compile_statement("CREATE MATERIALIZED VIEW p AS SELECT k FROM t WHERE x > 1")
    assert plain[0] == 'CREATE VIEW "p" AS\nSELECT k FROM t WHERE x > 1'
    assert plain[2] == (
        "DO $gridctl$ BEGIN EXECUTE 'CREATE VIEW gridctl_engine.\"p__tick\" AS\n' || "
        'gridctl_engine.tick_sql(\'SELECT k FROM "gridctl_ref"."t" AS t WHERE x > 1\', '
        "ARRAY['t']::TEXT[]); END $gridctl$"
    )
    # and how far back it reads t, for retention: all of it (no temporal filter)
    assert plain[3:] == [
        "DELETE FROM gridctl_engine.reads WHERE view = 'p'",
        "INSERT INTO gridctl_engine.reads (view, relation, col, seconds, basis) VALUES "
        "('p', 't', NULL, NULL, 'now')",
    ]


def _view_row(statements: list[str]) -> str:
    (row,) = [s for s in statements if s.startswith("INSERT INTO gridctl_engine.views")]
    return row


def test_reads_record_temporal_filters_and_eowc_windows() -> None:
    recent = compile_statement(
        "CREATE MATERIALIZED VIEW r AS SELECT k, MAX(x) AS x FROM t "
        "WHERE ts > NOW() - INTERVAL '1 HOUR' GROUP BY k"
    )
    assert recent[-1].endswith("('r', 't', 'ts', 3600, 'now')")
    eowc = compile_statement(
        "CREATE MATERIALIZED VIEW w AS SELECT k, window_start, window_end, SUM(x) AS s "
        "FROM TUMBLE(src, ts, INTERVAL '1 MINUTE') GROUP BY k, window_start, window_end "
        "EMIT ON WINDOW CLOSE"
    )
    assert eowc[-1].endswith("('w', 'src', 'ts', 60, 'watermark')")


def test_sink_catalog_rows() -> None:
    sql, *_ = compile_statement(
        "CREATE SINK s FROM v WITH (connector = 'kafka', properties.bootstrap.server = 'k', "
        "topic = 'ocpp.commands.set_charging_profile', primary_key = 'station_id') "
        "FORMAT UPSERT ENCODE JSON"
    )
    assert "INSERT INTO gridctl_engine.sinks" in sql
    assert "'v', 'ocpp.commands.set_charging_profile', 'UPSERT', ARRAY['station_id']" in sql
    plain, *_ = compile_statement(
        "CREATE SINK a FROM v WITH (connector = 'kafka', topic = 'alerts.grid.dr') "
        "FORMAT PLAIN ENCODE JSON (force_append_only = 'true')"
    )
    assert "'PLAIN'" in plain


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        (
            "CREATE SOURCE s (a INT) WITH (connector = 'datagen') FORMAT PLAIN ENCODE JSON",
            "datagen",
        ),
        (
            "CREATE SOURCE s WITH (connector = 'kafka', topic = 't') FORMAT PLAIN ENCODE JSON",
            "column",
        ),
        (
            "CREATE SINK s FROM v WITH (connector = 'kafka', topic = 't') "
            "FORMAT UPSERT ENCODE JSON",
            "primary_key",
        ),
        ("CREATE MATERIALIZED VIEW v AS SELECT k FROM t EMIT ON WINDOW CLOSE", "window_end"),
        ("CREATE MATERIALIZED VIEW v AS SELECT FROM WHERE", "parse"),
        ("ALTER MATERIALIZED VIEW v SWAP WITH w", "not compiled"),
        ("CREATE TABLE t (a GEOMETRY) WITH (connector = 'kafka', topic = 't')", "GEOMETRY"),
        (
            "CREATE VIEW v AS SELECT * FROM HOP(t, ts, INTERVAL '7 SECONDS', INTERVAL '1 MINUTE')",
            "multiple",
        ),
    ],
)
def test_errors_name_the_statement_and_reason(sql: str, reason: str) -> None:
    with pytest.raises(CompileError) as err:
        compile_statement("-- a comment first\n" + sql)
    assert err.value.statement == sql.splitlines()[0][:120]
    assert reason.lower() in str(err.value).lower()


def test_compile_drop() -> None:
    drops = compile_drop("MATERIALIZED VIEW", "dr_commands")
    assert drops[0] == 'DROP VIEW IF EXISTS "dr_commands" CASCADE'
    assert any("DELETE FROM gridctl_engine.sinks" in s for s in drops)
    assert "DELETE FROM gridctl_engine.sinks WHERE name = 's'" in compile_drop("SINK", "s")
    with pytest.raises(CompileError):
        compile_drop("SOURCE", "x")


def test_every_migration_compiles_and_applies_twice_idempotent_bootstrap(postgres: str) -> None:
    statements = compiled_statements()
    assert len(statements) > len(BOOTSTRAP_SQL)
    apply_migrations(postgres)
    with psycopg.connect(postgres) as conn:
        for sql in BOOTSTRAP_SQL:  # the runner executes the bootstrap before every run
            conn.execute(sql)  # type: ignore[arg-type]
        sinks = conn.execute(
            "SELECT name, topic, format FROM gridctl_engine.sinks ORDER BY name"
        ).fetchall()
        assert sinks == [
            ("dr_alert_episodes_sink", "pipeline.dr_alert_episodes", "UPSERT"),
            ("dr_alerts_sink", "alerts.grid.dr", "PLAIN"),
            ("dr_baselines_sink", "pipeline.dr_baselines", "UPSERT"),
            ("dr_signal_states_sink", "pipeline.dr_signal_states", "UPSERT"),
            ("overload_alerts_sink", "alerts.grid.overload", "PLAIN"),
            ("set_charging_profile_sink", "ocpp.commands.set_charging_profile", "UPSERT"),
            ("station_dr_alerts_sink", "alerts.grid.dr", "PLAIN"),
        ]
        topics = conn.execute("SELECT topic FROM gridctl_engine.sources ORDER BY topic").fetchall()
        assert [t for (t,) in topics] == [
            "config.station_zones",
            "grid.demand_response",
            "ocpp.command_results",
            "ocpp.meter_values",
            "ocpp.station_status",  # station_status (append-only) and station_presence
            "ocpp.station_status",
            "pipeline.dr_alert_episodes",
            "pipeline.dr_baselines",
        ]


def test_hop_windows_on_postgres(postgres: str) -> None:
    with psycopg.connect(postgres) as conn:
        for sql in BOOTSTRAP_SQL:
            conn.execute(sql)  # type: ignore[arg-type]
        conn.execute("CREATE TABLE ev (k TEXT, ts TIMESTAMPTZ)")
        conn.execute("INSERT INTO ev VALUES ('a', '2026-01-05T12:00:45Z')")
        for sql in compile_statement(
            "CREATE VIEW h AS SELECT k, window_start, window_end "
            "FROM HOP(ev, ts, INTERVAL '30 SECONDS', INTERVAL '1 MINUTE')"
        ):
            conn.execute(sql)  # type: ignore[arg-type]
        rows = conn.execute("SELECT window_start, window_end FROM h ORDER BY 1").fetchall()
    iso = [(a.isoformat(), b.isoformat()) for a, b in rows]
    # 12:00:45 lies in the 1-minute windows starting 12:00:00 and 12:00:30.
    assert [(a[11:19], b[11:19]) for a, b in iso] == [
        ("12:00:00", "12:01:00"),
        ("12:00:30", "12:01:30"),
    ]
    assert all(isinstance(a, datetime) for a, _ in rows)


def test_latest_per_key_views_are_refreshed_incrementally_only_when_exact() -> None:
    top1 = (
        "CREATE MATERIALIZED VIEW l AS SELECT k, v, ts FROM (SELECT k, v, ts, ROW_NUMBER() "
        "OVER (PARTITION BY k ORDER BY ts DESC) AS rn FROM src "
        "WHERE v IS NOT NULL AND ts > NOW() - INTERVAL '2 MINUTES') AS x WHERE rn = 1"
    )
    row = _view_row(compile_statement(top1))
    assert "'top1'" in row and "_ingest_seq > COALESCE" in row
    # A time bound on another column, or an ascending order, is not incremental: cached.
    other = top1.replace("ts > NOW()", "v > 0 AND k > 'a' AND ts2 > NOW()").replace(
        "SELECT k, v, ts,", "SELECT k, v, ts, ts2,"
    )
    assert "'cached'" in _view_row(compile_statement(other))
    asc = top1.replace("ts DESC", "ts ASC")
    assert "'cached'" in _view_row(compile_statement(asc))
    appended = compile_statement(SOURCE)[0]
    assert '"_ingest_seq" BIGINT GENERATED ALWAYS AS IDENTITY' in appended


def test_sink_key_encode_text_is_understood_and_checked() -> None:
    from pipeline.compiler import CompileError, compile_statement

    base = (
        "CREATE SINK s FROM v WITH (connector = 'kafka', properties.bootstrap.server = 'k:9', "
        "topic = 't', primary_key = '{pk}') FORMAT UPSERT ENCODE JSON KEY ENCODE {enc}"
    )
    compiled = compile_statement(base.format(pk="station_id", enc="TEXT"))
    assert any("gridctl_engine.sinks" in s for s in compiled)
    with pytest.raises(CompileError, match="exactly one primary_key"):
        compile_statement(base.format(pk="a,b", enc="TEXT"))
    with pytest.raises(CompileError, match="only TEXT"):
        compile_statement(base.format(pk="station_id", enc="AVRO"))
