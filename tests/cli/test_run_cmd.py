"""``gridctl run`` refuses bad settings and unstartable environments in one line."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from pipeline.embedded_pg import free_port

ROOT = Path(__file__).resolve().parents[2]


def gridctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", "run", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_a_port_in_use_is_one_line_and_stops_what_started(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = gridctl(
            "--data-dir", str(tmp_path), "--ocpp-port", str(port),
            "--api-port", str(free_port()), "--pg-port", str(free_port()),
        )  # fmt: skip
    assert result.returncode == 1
    assert "cannot start" in result.stderr and "address already in use" in result.stderr
    assert "Traceback" not in result.stderr
    # The embedded PostgreSQL it had started was stopped again.
    assert not (tmp_path / "postgres" / "pgdata" / "postmaster.pid").exists()


def test_flag_mistakes_name_the_flag() -> None:
    assert "--kafka-config" in gridctl("--kafka-config", "nokey").stderr
    assert "--tls-cert" in gridctl("--tls-cert", "/nonexistent").stderr
    assert "--kafka-bootstrap" in gridctl("--bus", "kafka").stderr


def test_gateway_settings_that_cannot_work_are_refused_before_starting() -> None:
    skew = gridctl("--max-clock-skew", "0")
    assert skew.returncode == 2 and "max_clock_skew_s must be positive" in skew.stderr
    frame = gridctl("--ocpp-max-frame", "100")
    assert frame.returncode == 2 and "max_size below 1 KiB" in frame.stderr
