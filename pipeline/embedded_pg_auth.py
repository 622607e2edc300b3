"""Who may connect to the embedded PostgreSQL, and with which secret.

The embedded server listens on loopback, where every local account can reach it; ``trust``
there made any of them a superuser (``INSERT INTO dr_signals`` commands the fleet without
an API token, ``COPY ... FROM PROGRAM`` runs commands as the server). So:

- the cluster is initialised with ``scram-sha-256`` for every connection, socket included;
- three roles, each with a generated password in its own libpq password file (0600, in the
  data dir, next to nothing the server user can read):

  ========================  ======================================  ======================
  role                      what for                                file
  ========================  ======================================  ======================
  ``postgres`` (superuser)  creating the roles; nothing else        ``superuser.pgpass``
  ``gridctl`` (owner)       migrations and the engine; not super    ``gridctl.pgpass``
  ``gridctl_reader``        dashboards, ``status``, ``query``:      ``reader.pgpass``
                            reads everything, writes nothing
  ========================  ======================================  ======================

DSNs name the file (``?passfile=...``), never the password, so a DSN can be printed and
logged. Grafana and other non-libpq clients take the password from the file's last field.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

SUPERUSER = "postgres"
OWNER = "gridctl"
READER = "gridctl_reader"
DATABASE = "gridctl"
_FILES = {SUPERUSER: "superuser.pgpass", OWNER: "gridctl.pgpass", READER: "reader.pgpass"}

#: ``pg_hba.conf`` of the embedded cluster: a password for every connection.
HBA = """\
# gridctl: every connection needs a password (scram-sha-256); see pipeline/embedded_pg_auth.py
local   all   all                  scram-sha-256
host    all   all   127.0.0.1/32   scram-sha-256
host    all   all   ::1/128        scram-sha-256
"""


def passfile(data_dir: Path, role: str) -> Path:
    """The libpq password file of ``role`` in the embedded server's ``data_dir``."""
    return Path(data_dir).resolve() / _FILES[role]


def dsn(data_dir: Path, role: str, host: str, port: int, database: str = DATABASE) -> str:
    """A libpq URL for ``role`` whose password libpq reads from the role's file."""
    return (
        f"postgresql://{role}@{host}:{port}/{database}"
        f"?passfile={quote(str(passfile(data_dir, role)), safe='/')}"
    )


def embedded_reader_dsn(data_dir: Path, port: int, host: str = "127.0.0.1") -> str | None:
    """The read-only DSN of the embedded server ``gridctl run --data-dir data_dir`` starts,
    or None when that data dir has none (``data_dir`` is gridctl's, not the server's)."""
    server_dir = Path(data_dir) / "postgres"
    if not passfile(server_dir, READER).exists():
        return None
    return dsn(server_dir, READER, host, port)


@dataclass(frozen=True)
class Secrets:
    """The password of each role, as kept in the files."""

    passwords: dict[str, str]

    def __getitem__(self, role: str) -> str:
        return self.passwords[role]


def exists(data_dir: Path) -> bool:
    """Whether the secrets of a closed cluster are there (an old cluster has none)."""
    return passfile(data_dir, SUPERUSER).exists()


def load_or_create(data_dir: Path) -> Secrets:
    """Read each role's password, generating and writing (0600) those missing."""
    passwords = {}
    for role in _FILES:
        path = passfile(data_dir, role)
        password = _read(path, role)
        if password is None:
            password = secrets.token_urlsafe(24)  # [A-Za-z0-9_-]: nothing to escape
            _write_private(path, f"*:*:*:{role}:{password}\n")
        elif path.stat().st_uid == os.geteuid():
            path.chmod(0o600)  # libpq ignores a password file others can read
        passwords[role] = password
    return Secrets(passwords)


def _read(path: Path, role: str) -> str | None:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) == 5 and fields[3] == role and fields[4]:
            return fields[4]
    return None


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600 from the first byte, atomically."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def provision_sql(secrets_: Secrets) -> list[tuple[str, tuple[object, ...]]]:
    """Statements (run as the superuser on any database) that make the roles as above.

    Idempotent: roles that exist get their attributes and password set again, so the
    files stay the truth.
    """
    from psycopg import sql

    out: list[tuple[str, tuple[object, ...]]] = []
    for role, attrs in (
        (SUPERUSER, "SUPERUSER LOGIN"),
        (OWNER, "LOGIN NOSUPERUSER CREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"),
        (READER, "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"),
    ):
        stmt = sql.SQL(
            "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = {name}) "
            "THEN CREATE ROLE {role}; END IF; END $$"
        ).format(name=sql.Literal(role), role=sql.Identifier(role))
        out.append((stmt.as_string(None), ()))
        stmt = sql.SQL("ALTER ROLE {role} WITH " + attrs + " PASSWORD {pw}").format(
            role=sql.Identifier(role), pw=sql.Literal(secrets_[role])
        )
        out.append((stmt.as_string(None), ()))
    out.append((f'GRANT pg_read_all_data TO "{READER}"', ()))
    out.append((f'ALTER ROLE "{READER}" SET default_transaction_read_only = on', ()))
    return out


#: Run in the gridctl database of a cluster made before roles existed: what the superuser
#: created there (tables, views, sequences, functions, schemas) goes to the owner role.
ADOPT_OBJECTS = f"""
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT nspname FROM pg_namespace
             WHERE nspowner = '{SUPERUSER}'::regrole AND nspname NOT LIKE 'pg\\_%'
               AND nspname NOT IN ('information_schema', 'public') LOOP
        EXECUTE format('ALTER SCHEMA %I OWNER TO {OWNER}', r.nspname);
    END LOOP;
    FOR r IN SELECT c.oid::regclass AS name, c.relkind FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relowner = '{SUPERUSER}'::regrole AND c.relkind IN ('r', 'p', 'v', 'm')
               AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema' LOOP
        EXECUTE format('ALTER %s %s OWNER TO {OWNER}',
            CASE r.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                ELSE 'TABLE' END, r.name);
    END LOOP;
    FOR r IN SELECT c.oid::regclass AS name FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relowner = '{SUPERUSER}'::regrole AND c.relkind = 'S'
               AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema' LOOP
        EXECUTE format('ALTER SEQUENCE %s OWNER TO {OWNER}', r.name);
    END LOOP;
    FOR r IN SELECT p.oid::regprocedure AS name FROM pg_proc p
             JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE p.proowner = '{SUPERUSER}'::regrole
               AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema' LOOP
        EXECUTE format('ALTER ROUTINE %s OWNER TO {OWNER}', r.name);
    END LOOP;
END $$
"""
