"""``gridctl status`` and ``gridctl query`` over the Postgres wire, on a real PostgreSQL
holding the compiled migrations."""

from __future__ import annotations

import psycopg
import typer
from typer.testing import CliRunner

from cli import query_cmd, status_cmd
from pipeline.migrate import apply


def _app() -> typer.Typer:
    app = typer.Typer()
    status_cmd.register(app)
    query_cmd.register(app)
    return app


def _seed(dsn: str) -> None:
    apply(dsn, "migrations", {"kafka_bootstrap": "embedded"})
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO station_zones (kafka_key, station_id, zone_id, max_station_kw, "
            "contract_max_kw, min_active_kw, charging_rate_unit, phases, voltage_v) VALUES "
            "('s1', 's1', 'north', 22, 11, 1.4, 'W', 3, 230), "
            "('s2', 's2', 'north', 11, 11, 1.4, 'W', 3, 230)"
        )


def test_status_shows_every_section(postgres: str) -> None:
    _seed(postgres)
    result = CliRunner().invoke(
        _app(), ["status", "--database-url", postgres], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    for title in (
        "zones: load and utilisation",
        "active DR signals",
        "station limits",
        "recent alerts",
    ):
        assert title in result.output
    # Capacity of a zone is over all of its stations: min(max, contract) = 11 + 11.
    assert "north" in result.output and "22" in result.output


def test_status_without_a_database_says_how_to_get_one(tmp_path) -> None:
    result = CliRunner().invoke(
        _app(), ["status", "--data-dir", str(tmp_path)], env={"GRIDCTL_DATABASE_URL": ""}
    )
    assert result.exit_code == 2
    assert "no database" in result.output


def test_query_runs_a_named_file_and_refuses_unknown_names(postgres: str) -> None:
    _seed(postgres)
    ok = CliRunner().invoke(_app(), ["query", "zone_utilisation", "--database-url", postgres])
    assert ok.exit_code == 0, ok.output
    assert "north" in ok.output
    missing = CliRunner().invoke(_app(), ["query", "nope", "--database-url", postgres])
    assert missing.exit_code == 2
    assert "no query 'nope'" in missing.output


def test_status_json_and_watch(postgres: str) -> None:
    """``--json`` is one document per section; ``--watch --json`` one document a line,
    until Ctrl-C (exit 0)."""
    import json
    import signal
    import subprocess
    import sys
    from pathlib import Path

    _seed(postgres)
    once = CliRunner().invoke(_app(), ["status", "--json", "--database-url", postgres])
    assert once.exit_code == 0, once.output
    doc = json.loads(once.output)
    assert set(doc) == {
        "at", "zone_utilisation", "station_counts", "active_dr", "signal_states",
        "station_limits", "recent_alerts",
    }  # fmt: skip
    assert doc["signal_states"] == []  # nothing in force
    # s1 and s2 in north, neither ever connected: both offline.
    assert doc["station_counts"] == [{"zone_id": "north", "stations": 2, "online": 0, "offline": 2}]
    root = Path(__file__).resolve().parents[2]
    # Ctrl-C as on a terminal: the child must start with SIGINT's default disposition. A
    # shell without job control (a script, CI, `pytest ... &`) starts background jobs with
    # SIGINT ignored, an ignored signal stays ignored across exec, and Python then installs
    # no KeyboardInterrupt handler: the SIGINT below did nothing and the watch ran until
    # the 30 s wait expired. A handler set here is reset to the default in the child.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        watch = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "status", "--watch", "--json", "--interval",
             "200ms", "--database-url", postgres],
            cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        assert watch.stdout is not None
        lines = [watch.stdout.readline(), watch.stdout.readline()]
        watch.send_signal(signal.SIGINT)
        watch.wait(timeout=30)
    finally:
        if watch.poll() is None:  # never leave it running (it holds a connection)
            watch.kill()
            watch.wait()
    assert watch.returncode == 0, watch.stderr.read() if watch.stderr else None
    first, second = (json.loads(line) for line in lines)
    assert first["zone_utilisation"] == second["zone_utilisation"]
    assert second["at"] > first["at"]
