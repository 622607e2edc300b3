"""The compiled catalog as the engine reads it: sources fed from topics, sinks to evaluate."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg

from pipeline.compiler.bootstrap import SCHEMA
from pipeline.engine.errors import CatalogError


@dataclass(frozen=True)
class Source:
    """A table fed from a topic (compiled from CREATE SOURCE/TABLE)."""

    name: str
    kind: str
    topic: str
    format: str
    primary_key: tuple[str, ...]
    version_column: str | None
    key_column: str | None
    watermark_column: str | None
    watermark_delay: timedelta | None
    append_only: bool
    columns: tuple[tuple[str, str], ...]
    #: ON CONFLICT DO NOTHING: the first row per key wins
    keep_first: bool = False

    @property
    def column_names(self) -> list[str]:
        return [c for c, _ in self.columns]


@dataclass(frozen=True)
class Sink:
    """A registered query whose changes go to a topic (compiled from CREATE SINK)."""

    name: str
    view_name: str
    topic: str
    format: str
    primary_key: tuple[str, ...]
    #: what the tick reads: the view's tick relation (``gridctl_engine."v__tick"``: the
    #: caches this tick filled) when it has one, else the view itself
    read_from: str = ""

    @property
    def relation(self) -> str:
        return self.read_from or self.view_name

    @property
    def upsert(self) -> bool:
        return self.format == "UPSERT"


@dataclass(frozen=True)
class View:
    """A view the engine materialises each tick: 'eowc' (append closed windows) or
    'cached' (store the result once per tick)."""

    name: str
    kind: str
    sources: tuple[str, ...]
    refresh_sql: str | None = None
    #: the query the tick stores in the cache: ``name__eval`` (reads the caches below),
    #: or, compiled before it existed, ``name__live`` under ``gridctl.cached``
    evaluate: str | None = None
    #: 'eowc': seconds between window ends (windows are aligned to ``WINDOW_ORIGIN``)
    window_step: int | None = None


async def load_views(conn: psycopg.AsyncConnection) -> list[View]:
    """Materialised views in creation (= dependency) order.

    EOWC views are always kept (appending closed windows is incremental and cheap);
    cached views only when some sink reads them, directly or through other views (caching
    a dashboard-only view such as a 24 h history would recompute it every tick). Rows of
    views that a CASCADE drop removed are ignored until the view is created again.
    """
    async with conn.cursor() as cur:
        await cur.execute(
            f"""
WITH RECURSIVE closure(oid) AS (
    SELECT to_regclass(view_name)::oid FROM {SCHEMA}.sinks
        WHERE to_regclass(view_name) IS NOT NULL
    UNION
    SELECT d.refobjid FROM closure
    JOIN pg_rewrite r ON r.ev_class = closure.oid
    JOIN pg_depend d ON d.objid = r.oid AND d.classid = 'pg_rewrite'::regclass
        AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> closure.oid
)
SELECT v.name, v.kind, v.sources, v.refresh_sql,
    to_regclass(format('%I.%I', '{SCHEMA}', v.name || '__eval'))::text, v.window_step
FROM {SCHEMA}.views AS v
WHERE to_regclass(format('%I.%I', '{SCHEMA}', v.name || CASE v.kind
        WHEN 'eowc' THEN '__closed' ELSE '__cache' END)) IS NOT NULL
    AND to_regclass(format('%I', v.name)) IS NOT NULL
    AND (v.kind = 'eowc' OR to_regclass(format('%I', v.name))::oid IN (SELECT oid FROM closure))
ORDER BY v.seq"""
        )
        return [View(r[0], r[1], tuple(r[2]), r[3], r[4], r[5]) for r in await cur.fetchall()]


async def load_watermarks(conn: psycopg.AsyncConnection) -> dict[str, datetime]:
    """Each source's watermark as ingest left it (survives restarts: it is in the catalog)."""
    async with conn.cursor() as cur:
        await cur.execute(
            f"SELECT name, watermark_ts FROM {SCHEMA}.sources "
            "WHERE watermark_ts IS NOT NULL AND watermark_ts > '-infinity'"
        )
        return {r[0]: r[1] for r in await cur.fetchall()}


async def load(conn: psycopg.AsyncConnection) -> tuple[list[Source], list[Sink]]:
    """Read sources and sinks; :class:`CatalogError` if the schema is not there."""
    try:
        async with conn.cursor() as cur:
            await cur.execute(
                f"SELECT name, kind, topic, format, primary_key, version_column, key_column, "
                f"watermark_column, watermark_delay, append_only, columns, keep_first "
                f"FROM {SCHEMA}.sources ORDER BY name"
            )
            sources = [
                Source(
                    name=r[0],
                    kind=r[1],
                    topic=r[2],
                    format=r[3],
                    primary_key=tuple(r[4]),
                    version_column=r[5],
                    key_column=r[6],
                    watermark_column=r[7],
                    watermark_delay=r[8],
                    append_only=r[9],
                    columns=tuple(
                        tuple(c) for c in (r[10] if isinstance(r[10], list) else json.loads(r[10]))
                    ),
                    keep_first=r[11],
                )
                for r in await cur.fetchall()
            ]
            await cur.execute(
                f"SELECT name, view_name, topic, format, primary_key, COALESCE(to_regclass("
                f"format('%I.%I', '{SCHEMA}', view_name || '__tick'))::text, '') "
                f"FROM {SCHEMA}.sinks ORDER BY name"
            )
            sinks = [Sink(r[0], r[1], r[2], r[3], tuple(r[4]), r[5]) for r in await cur.fetchall()]
    except psycopg.errors.UndefinedTable as exc:
        raise CatalogError(f"no engine catalog ({exc}); apply the migrations first") from exc
    return sources, sinks
