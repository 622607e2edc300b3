"""What ``gridctl run`` shows and leaves on disk: where secrets are, never the secrets.

A real ``gridctl run`` child process with its embedded PostgreSQL and generated token.
"""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from psycopg import errors

from pipeline.embedded_pg import free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(240)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_banner_names_the_token_file_and_the_read_only_dsn(tmp_path: Path) -> None:
    data = tmp_path / "data"
    out = tmp_path / "out.txt"
    with open(out, "wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "run", "--data-dir", str(data),
             "--ocpp-port", str(free_port()), "--api-port", str(free_port()),
             "--pg-port", str(free_port())],
            cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, "COLUMNS": "250"},
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while "Ctrl-C stops" not in out.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, out.read_text()
            time.sleep(0.3)
        text = out.read_text()
        token = (data / "api-token").read_text().strip()
        assert token not in text
        assert f"API token in {data / 'api-token'}" in text.replace("\n", "")
        dsn = re.search(r"psql '([^']+)'", text)
        assert dsn, text
        assert dsn.group(1).startswith("postgresql://gridctl_reader@127.0.0.1:")
        for passfile in (data / "postgres").glob("*.pgpass"):
            assert passfile.read_text().rsplit(":", 1)[1].strip() not in text
        assert "password in" in text and "reader.pgpass" in text
        with psycopg.connect(dsn.group(1), autocommit=True) as conn:
            assert conn.execute("SELECT count(*) FROM dr_zone_caps").fetchone() == (0,)
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute("SET default_transaction_read_only = off")
                conn.execute("DELETE FROM dr_signals")
        # Files with secrets 0600, directories 0700.
        assert mode(data) == 0o700
        assert mode(data / "bus") == 0o700
        for secret in ("api-token", "bus/bus.log", "dr-revisions.sqlite3"):
            assert mode(data / secret) == 0o600, secret
        for passfile in (data / "postgres").glob("*.pgpass"):
            assert mode(passfile) == 0o600, passfile
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
