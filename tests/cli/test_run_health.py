"""``gridctl run`` owns its data dir and its ``/healthz`` tells the truth (issue 15).

Everything real: a ``gridctl run`` process with its embedded PostgreSQL. A second run on
the same data dir is refused naming the first one's pid; pausing the PostgreSQL cluster
(SIGSTOP on the postmaster and every backend) turns ``/healthz`` into 503 naming the
database and the engine, and SIGCONT brings it back; a killed engine connection is
replaced by the engine itself, which goes on ticking.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest

from pipeline import embedded_pg_auth as auth
from pipeline.embedded_pg import free_port

ROOT = Path(__file__).resolve().parents[2]


def _run(data_dir: Path, *extra: str) -> subprocess.Popen[str]:
    args = [
        "--data-dir", str(data_dir), "--ocpp-port", str(free_port()),
        "--api-port", str(free_port()), "--pg-port", str(free_port()), *extra,
    ]  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-m", "cli.main", "run", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )


def _wait_for(check, timeout: float, what: str):  # type: ignore[no-untyped-def]
    """Poll ``check()`` until it returns a truthy value; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path, dict]]:
    proc = _run(tmp_path)
    state_file = tmp_path / "run.json"
    try:
        _wait_for(lambda: state_file.exists() or proc.poll() is not None, 120, "run.json")
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        state = json.loads(state_file.read_text())
        yield proc, tmp_path, state
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _health(api_url: str) -> tuple[int, dict]:
    try:
        r = httpx.get(f"{api_url}/healthz", timeout=5)
    except httpx.HTTPError:
        return 0, {}
    return r.status_code, r.json()


def _cluster_pids(pgdata: Path) -> list[int]:
    """The postmaster and every process it started (backends, checkpointer, ...)."""
    postmaster = int((pgdata / "postmaster.pid").read_text().split()[0])
    pids = [postmaster]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == postmaster:
                pids.append(int(entry.name))
    return pids


def test_a_second_run_on_the_same_data_dir_is_refused_naming_the_first(running) -> None:  # type: ignore[no-untyped-def]
    proc, data_dir, state = running
    assert state["pid"] == proc.pid
    assert (data_dir / "run.json").stat().st_mode & 0o777 == 0o600
    second = _run(data_dir)
    _out, err = second.communicate(timeout=60)
    assert second.returncode == 1
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert f"pid {proc.pid}" in lines[0] and str(data_dir) in lines[0]
    assert proc.poll() is None  # the first one is untouched
    # and healthy (its engine may still be catching up on a loaded machine: wait for it)
    _wait_for(lambda: _health(state["api_url"])[0] == 200, 120, "the first run healthy")


def test_paused_postgres_makes_healthz_503_and_it_recovers(running) -> None:  # type: ignore[no-untyped-def]
    proc, data_dir, state = running
    api = state["api_url"]
    _code, body = _wait_for(lambda: (h := _health(api))[0] == 200 and h, 120, "healthy")
    assert set(body["components"]) == {"engine", "database", "bus", "gateway", "bridge"}

    pids = _cluster_pids(data_dir / "postgres" / "pgdata")
    assert len(pids) > 1  # postmaster plus at least the engine's backend
    paused_at = time.monotonic()
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        _code, body = _wait_for(lambda: (h := _health(api))[0] == 503 and h, 30, "503")
        elapsed = time.monotonic() - paused_at
        print(f"healthz 503 {elapsed:.1f} s after SIGSTOP")
        assert body["status"] == "down"
        assert body["components"]["database"]["ok"] is False
        assert body["components"]["bus"]["ok"] is True
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    _code, body = _wait_for(lambda: (h := _health(api))[0] == 200 and h, 60, "recovery")
    assert all(c["ok"] for c in body["components"].values()), body
    assert proc.poll() is None


def test_the_engine_replaces_a_killed_database_connection(running) -> None:  # type: ignore[no-untyped-def]
    proc, _data_dir, state = running
    api = state["api_url"]
    _wait_for(lambda: _health(api)[0] == 200, 120, "healthy")
    # The superuser (run.json names the read-only role, which may terminate nobody).
    port = urlsplit(state["database_url"]).port
    superuser = auth.dsn(_data_dir / "postgres", auth.SUPERUSER, "127.0.0.1", port or 0)
    with psycopg.connect(superuser, autocommit=True) as conn:
        others = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
            "AND datname = current_database() AND backend_type = 'client backend'"
        ).fetchall()
        killed_at = time.time()
        for (pid,) in others:
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
    assert others  # the engine's connection at least
    # Ticks continue on a new connection: the tick timestamp the engine exports moves on,
    # and health is (or comes back) ok.

    def ticked_after_kill() -> bool:
        r = httpx.get(
            f"{api}/metrics",
            headers={"Authorization": f"Bearer {_token(_data_dir)}"},
            timeout=5,
        )
        for line in r.text.splitlines():
            if line.startswith("gridctl_engine_last_tick_timestamp_seconds "):
                return float(line.split()[1]) > killed_at + 1
        return False

    _wait_for(ticked_after_kill, 60, "a tick after the connection was killed")
    assert _health(api)[0] == 200
    assert proc.poll() is None


def _token(data_dir: Path) -> str:
    from dr_bridge.token import token_path

    return token_path(data_dir).read_text().strip()
