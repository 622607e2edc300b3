"""Read the engine's views for the API: the NOC queries of ``sql/``, over one connection.

The bridge publishes to the bus and otherwise never needs the engine; only the read
endpoints (``/v1/zones``, station state, the status page) do. They run the same files
``gridctl query`` runs, so the API, the CLI and dashboards cannot disagree, and the same
SQL works against the embedded engine and RisingWave (no server-side prepared
statements). One connection serves every request in turn, reopened after any error.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg


class ViewsUnavailable(RuntimeError):
    """The engine's database did not answer; the message says why (no DSN in it)."""


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


class ViewReader:
    """``await rows("zone_utilisation")`` -> the query's rows as dicts (JSON-ready)."""

    def __init__(self, dsn: str, sql_dir: Path, *, timeout: float = 5.0) -> None:
        self._dsn = dsn
        self._dir = sql_dir
        self._timeout = timeout
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._lock = asyncio.Lock()

    def _text(self, name: str) -> str:
        return (self._dir / f"{name}.sql").read_text(encoding="utf-8")

    async def rows(self, name: str) -> list[dict[str, Any]]:
        return (await self.many([name]))[name]

    async def many(self, names: list[str]) -> dict[str, list[dict[str, Any]]]:
        texts = {name: self._text(name) for name in names}
        async with self._lock:
            try:
                async with asyncio.timeout(self._timeout):
                    return await self._run(texts)
            except (TimeoutError, psycopg.Error, OSError) as exc:
                await self._drop()
                reason = str(exc).strip().splitlines()
                raise ViewsUnavailable(
                    "engine database unavailable: "
                    + (reason[0] if reason else f"no answer within {self._timeout:g} s")
                ) from exc

    async def _run(self, texts: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
        if self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(
                self._dsn,
                autocommit=True,
                prepare_threshold=None,
                connect_timeout=max(1, int(self._timeout)),
            )
        out: dict[str, list[dict[str, Any]]] = {}
        for name, text in texts.items():
            cur = await self._conn.execute(text)  # type: ignore[arg-type]
            columns = [d.name for d in cur.description or []]
            out[name] = [
                dict(zip(columns, map(_json_value, row), strict=True))
                for row in await cur.fetchall()
            ]
        return out

    async def _drop(self) -> None:
        # A paused server would hold close() too: give it a moment, then let it go.
        if self._conn is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await self._conn.close()
        self._conn = None

    async def close(self) -> None:
        async with self._lock:
            await self._drop()
