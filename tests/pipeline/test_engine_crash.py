"""A PostgreSQL crash empties the engine's caches (UNLOGGED tables); the next tick refills
them and neither repeats nor drops a command.

A real embedded PostgreSQL of this test's own, its postmaster killed with SIGKILL: crash
recovery resets every UNLOGGED table, which a clean stop does not. The emitted state of the
sinks (``gridctl_engine.sink_state``) and the top-1 caches are logged and survive.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psycopg
import pytest

from pipeline.embedded_pg import EmbeddedPostgres
from pipeline.engine import Engine
from tests.pipeline.golden.harness import Harness

pytestmark = pytest.mark.timeout(180)


def _postmaster(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        assert row is not None
        # read while the backend lives: it exits as soon as the connection closes
        stat = Path(f"/proc/{row[0]}/stat").read_text().rsplit(")", 1)[1].split()
    return int(stat[1])  # a backend's parent is the postmaster


def _gone(pid: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise AssertionError(f"postmaster {pid} still alive")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
async def test_caches_a_crash_emptied_are_refilled_and_no_command_changes(
    tmp_path: Path,
) -> None:
    server = EmbeddedPostgres(tmp_path / "pg")
    server.start()
    try:
        async with Harness(server.dsn) as h:
            # As _capped_zone in test_engine.py: SHED 8 kW over 10 and 6 kW -> 4.6 and 3.3.
            await h.station("A", "Z1", phases=1)
            await h.station("B", "Z1", phases=1)
            await h.sample("A", 1, 10.0, -5)
            await h.sample("B", 1, 6.0, -5)
            await h.signal("sig", "Z1", "SHED", start=0, end=600, zone_limit_kw=8.0)
            await h.tick(1)
            assert h.targets() == {"A": 4.6, "B": 3.3}
            cache = 'SELECT count(*) FROM gridctl_engine."dr_station_targets__cache"'
            assert h.query(cache) == [(2,)]
            await h.engine.stop()
            postmaster = _postmaster(server.dsn)
            os.kill(postmaster, signal.SIGKILL)
            _gone(postmaster)
            server.start()  # crash recovery
            assert h.query(cache) == [(0,)]  # UNLOGGED: reset by the recovery
            h.engine = Engine(server.dsn, h.bus, clock=h.clock)
            await h.engine.start(loop=False)
            assert await h.tick(2) == []  # nothing repeated, no tombstone
            assert h.query(cache) == [(2,)]
            assert h.targets() == {"A": 4.6, "B": 3.3}
            # A change after the crash is still applied from the refilled caches.
            await h.signal("sig", "Z1", "SHED", start=0, end=600, modification=1,
                           zone_limit_kw=4.0)  # fmt: skip
            await h.tick(3)
            assert h.targets() == {"A": 2.1, "B": 1.8}
    finally:
        server.destroy()
