"""The RisingWave -> PostgreSQL compiler of the embedded engine.

``compile_statement(sql)`` takes one RisingWave statement (``${var}`` already substituted)
and returns the PostgreSQL statements that give the same meaning on the embedded engine:

- ``CREATE SOURCE`` / ``CREATE TABLE`` with a connector -> a table plus a row in
  ``gridctl_engine.sources`` saying which topic feeds it and how (PLAIN append, PLAIN
  upsert by primary key, UPSERT with tombstones, a version column, a watermark);
- ``CREATE MATERIALIZED VIEW`` / ``CREATE VIEW`` -> a view (see :mod:`.query`);
- ``CREATE SINK`` -> a row in ``gridctl_engine.sinks`` that the engine's tick evaluates;
- ``CREATE INDEX`` -> the same index; ``DROP ...`` -> :func:`compile_drop`.

The runner executes :data:`BOOTSTRAP_SQL` first. Anything else raises
:class:`CompileError` naming the statement.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

import sqlglot

from pipeline.compiler.bootstrap import BOOTSTRAP_SQL, SCHEMA
from pipeline.compiler.ddl import (
    Relation,
    parse_relation,
    parse_sink,
    pg_type,
    strip_comments,
    unquote,
)
from pipeline.compiler.errors import CompileError, first_line
from pipeline.compiler.query import (
    CompiledQuery,
    QueryError,
    Read,
    compile_query,
    output_columns,
)
from pipeline.compiler.top1 import INGEST_SEQ, top1_refresh_sql
from pipeline.compiler.version import COMPILER_VERSION

__all__ = [
    "BOOTSTRAP_SQL",
    "COMPILER_VERSION",
    "CompileError",
    "compile_drop",
    "compile_statement",
    "substitute",
]

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_.]*)\}")
_IDENT = r'(?:"[^"]+"|[A-Za-z_][A-Za-z0-9_]*)(?:\.(?:"[^"]+"|[A-Za-z_][A-Za-z0-9_]*))?'
_EOWC = re.compile(r"\bEMIT\s+ON\s+WINDOW\s+CLOSE\s*;?\s*$", re.I)
_VIEW = re.compile(
    rf"^\s*CREATE\s+(?P<mat>MATERIALIZED\s+)?VIEW\s+(?P<ine>IF\s+NOT\s+EXISTS\s+)?"
    rf"(?P<name>{_IDENT})\s*(?:\((?P<cols>[^)]*)\)\s*)?AS\s+(?P<query>.*)$",
    re.I | re.S,
)
_DROP = re.compile(
    rf"^\s*DROP\s+(?P<kind>MATERIALIZED\s+VIEW|VIEW|SINK|SOURCE|TABLE|INDEX)\s+"
    rf"(?:IF\s+EXISTS\s+)?(?P<name>{_IDENT})(?:\s+CASCADE)?\s*;?\s*$",
    re.I,
)


def substitute(text: str, values: Mapping[str, str]) -> str:
    """Replace every ``${name}``; a missing one raises KeyError naming it."""

    def repl(m: re.Match[str]) -> str:
        if m.group(1) not in values:
            raise KeyError(f"no value for ${{{m.group(1)}}}")
        return values[m.group(1)]

    return _VAR.sub(repl, text)


def _lit(value: str | None) -> str:
    return "NULL" if value is None else "'" + value.replace("'", "''") + "'"


def _array(values: list[str]) -> str:
    return "ARRAY[" + ", ".join(_lit(v) for v in values) + "]::TEXT[]"


def _relation_sql(rel: Relation, sql: str) -> list[str]:
    cols = [f'"{c.name}" {c.type}' for c in rel.columns]
    append_only = rel.kind == "SOURCE" or rel.append_only or not rel.primary_key
    fed = append_only and "connector" in rel.options  # appended to by the engine's ingest
    if fed:
        # Ingest order, so latest-per-key views can be refreshed from the new rows only.
        cols.append(f'"{INGEST_SEQ}" BIGINT GENERATED ALWAYS AS IDENTITY')
    if rel.primary_key:
        cols.append("PRIMARY KEY (" + ", ".join(f'"{c}"' for c in rel.primary_key) + ")")
    out = [f'CREATE TABLE IF NOT EXISTS "{rel.name}" (\n    ' + ",\n    ".join(cols) + "\n)"]
    index_cols = list(rel.indexes)
    if fed:
        index_cols.append([INGEST_SEQ])
    if rel.watermark_column:
        index_cols.append([rel.watermark_column])
    for cols_ in index_cols:
        idx = f"{rel.name}__{'_'.join(cols_)}__idx"[:63]
        out.append(
            f'CREATE INDEX IF NOT EXISTS "{idx}" ON "{rel.name}" ('
            + ", ".join(f'"{c}"' for c in cols_)
            + ")"
        )
    connector = rel.options.get("connector")
    if connector is None:
        return out
    if connector != "kafka":
        raise CompileError(first_line(sql), f"connector {connector!r} is not compiled (kafka)")
    topic = rel.options.get("topic")
    if not topic:
        raise CompileError(first_line(sql), "a kafka connector needs topic = '...'")
    fmt = rel.format or "PLAIN"
    if fmt not in ("PLAIN", "UPSERT"):
        raise CompileError(first_line(sql), f"FORMAT {fmt} is not compiled (PLAIN, UPSERT)")
    if fmt == "UPSERT" and rel.key_column and rel.primary_key != [rel.key_column]:
        raise CompileError(first_line(sql), "FORMAT UPSERT: the primary key must be the key column")
    columns = json.dumps([[c.name, c.type] for c in rel.columns])
    out.append(
        f"INSERT INTO {SCHEMA}.sources (name, kind, topic, format, primary_key, version_column, "
        "key_column, watermark_column, watermark_delay, append_only, columns, keep_first) "
        f"VALUES ({_lit(rel.name)}, {_lit(rel.kind)}, {_lit(topic)}, {_lit(fmt)}, "
        f"{_array(rel.primary_key)}, {_lit(rel.version_column)}, {_lit(rel.key_column)}, "
        f"{_lit(rel.watermark_column)}, {_lit(rel.watermark_delay)}::INTERVAL, "
        f"{'TRUE' if append_only else 'FALSE'}, {_lit(columns)}::JSONB, "
        f"{'TRUE' if rel.keep_first else 'FALSE'}) "
        "ON CONFLICT (name) DO UPDATE SET kind = EXCLUDED.kind, topic = EXCLUDED.topic, "
        "format = EXCLUDED.format, primary_key = EXCLUDED.primary_key, "
        "version_column = EXCLUDED.version_column, key_column = EXCLUDED.key_column, "
        "watermark_column = EXCLUDED.watermark_column, "
        "watermark_delay = EXCLUDED.watermark_delay, append_only = EXCLUDED.append_only, "
        "columns = EXCLUDED.columns, keep_first = EXCLUDED.keep_first"
    )
    return out


_ALTER_ADD = re.compile(
    rf"^\s*ALTER\s+(?:TABLE|SOURCE)\s+(?P<name>{_IDENT})\s+ADD\s+(?:COLUMN\s+)?(?P<col>{_IDENT})\s+"
    r"(?P<type>[A-Za-z][A-Za-z0-9 ()]*?)\s*;?\s*$",
    re.I | re.S,
)


def _alter_sql(sql: str, text: str) -> list[str]:
    """``ALTER TABLE|SOURCE t ADD [COLUMN] c type``: the column, and the ingest fills it.

    RisingWave fills a new column from the JSON field of the same name for messages read
    from then on; the embedded engine's ingest maps fields by the catalog's column list.
    """
    m = _ALTER_ADD.match(text)
    if m is None:
        raise CompileError(
            first_line(sql),
            "only ALTER TABLE|SOURCE name ADD [COLUMN] name type is compiled",
        )
    name, col = unquote(m.group("name")), unquote(m.group("col"))
    try:
        ctype = pg_type(m.group("type"))
    except ValueError as exc:
        raise CompileError(first_line(sql), str(exc)) from exc
    entry = _lit(json.dumps([[col, ctype]]))
    return [
        f'ALTER TABLE "{name}" ADD COLUMN IF NOT EXISTS "{col}" {ctype}',
        f"UPDATE {SCHEMA}.sources SET columns = columns || {entry}::JSONB "
        f"WHERE name = {_lit(name)} AND NOT columns @> {entry}::JSONB",
    ]


def _sink_sql(sql: str) -> list[str]:
    sink = parse_sink(sql)
    out: list[str] = []
    view = sink.view
    if view is None:
        view = f"{SCHEMA}.{sink.name}__query"
        try:
            out.append(_tick_view(view, compile_query(sink.query or "")))
        except QueryError as exc:
            raise CompileError(first_line(sql), str(exc)) from exc
    if sink.format not in ("PLAIN", "UPSERT"):
        raise CompileError(first_line(sql), f"sink FORMAT {sink.format} is not compiled")
    topic = sink.options.get("topic")
    if not topic:
        raise CompileError(first_line(sql), "a sink needs topic = '...'")
    pk = [c.strip() for c in sink.options.get("primary_key", "").split(",") if c.strip()]
    if sink.format == "UPSERT" and not pk:
        raise CompileError(first_line(sql), "an UPSERT sink needs primary_key = '...'")
    out.append(
        f"INSERT INTO {SCHEMA}.sinks (name, view_name, topic, format, primary_key) VALUES ("
        f"{_lit(sink.name)}, {_lit(view)}, {_lit(topic)}, {_lit(sink.format)}, {_array(pk)}) "
        "ON CONFLICT (name) DO UPDATE SET view_name = EXCLUDED.view_name, "
        "topic = EXCLUDED.topic, format = EXCLUDED.format, primary_key = EXCLUDED.primary_key"
    )
    return out


def _view_sql(sql: str, text: str) -> list[str]:
    """A view, an EOWC view (append-only table of closed windows) or a cached view."""
    m = _VIEW.match(text)
    if m is None:
        raise CompileError(first_line(sql), "expected CREATE [MATERIALIZED] VIEW name AS query")
    query = m.group("query").strip().rstrip(";")
    eowc = bool(_EOWC.search(query))
    if eowc:
        query = _EOWC.sub("", query)
    try:
        compiled = compile_query(query, eowc=eowc)
        if eowc and "window_end" not in output_columns(query):
            raise QueryError("EMIT ON WINDOW CLOSE needs window_end among the output columns")
    except QueryError as exc:
        raise CompileError(first_line(sql), str(exc)) from exc
    name = unquote(m.group("name"))
    if m.group("cols"):
        raise CompileError(first_line(sql), "a column list on a view is not compiled")
    materialized = bool(m.group("mat"))
    body = compiled.sql
    reads = _reads_sql(name, compiled.reads)
    tick = f'{SCHEMA}."{name}__tick"'
    if eowc:
        open_, closed = f'{SCHEMA}."{name}__open"', f'{SCHEMA}."{name}__closed"'
        return [
            # Leftovers of an earlier definition dropped by CASCADE (the runner rebuilds).
            f"DROP VIEW IF EXISTS {open_} CASCADE",
            f"DROP TABLE IF EXISTS {closed} CASCADE",
            f"CREATE VIEW {open_} AS\n{body}",
            f"CREATE TABLE {closed} AS SELECT * FROM {open_} WITH NO DATA",
            f'CREATE INDEX "{name}__closed__end" ON {closed} (window_end)',
            f'CREATE VIEW "{name}" AS SELECT * FROM {closed}',
            _view_row(name, "eowc", compiled.sources, step=compiled.window_step),
            *reads,
        ]
    # Aggregates and joins are stored once per tick: every view above reads the result
    # instead of recomputing it (the allocation views read dr_station_bounds five times).
    # A filter or projection of one relation stays a plain view: the planner folds it
    # into its readers and uses the relation's indexes (connector_recent holds every
    # sample of 15 minutes; storing it would cost more than reading it).
    if materialized and (compiled.aggregating or compiled.joining) and not compiled.windowed:
        # The engine's tick stores name__eval's result in name__cache once; the views and
        # sinks above read it through name__tick. The view itself (what dashboards read)
        # reads the cache too while the tick maintains it: like a RisingWave MV it holds
        # the last tick's result, and a query costs a scan, not an evaluation of every
        # view below (45 s for sql/station_limits.sql at 10k connectors when it did). A
        # view no sink reads is not maintained: it is its query (name__live), computed
        # when read.
        live, cache = f'{SCHEMA}."{name}__live"', f'{SCHEMA}."{name}__cache"'
        kept = f"{SCHEMA}.maintained({_lit(name)})"
        evaluate = f'{SCHEMA}."{name}__eval"'
        refresh = top1_refresh_sql(name, sqlglot.parse_one(query, read="risingwave"))
        return [
            f"DROP VIEW IF EXISTS {live} CASCADE",
            f"DROP VIEW IF EXISTS {evaluate} CASCADE",
            f"DROP VIEW IF EXISTS {tick} CASCADE",
            f"DROP TABLE IF EXISTS {cache} CASCADE",
            f"CREATE VIEW {live} AS\n{body}",
            _tick_view(evaluate, compiled),
            # A cache the tick rewrites whole is derived data: UNLOGGED, so rewriting it
            # writes no WAL (a crash empties it; the next tick fills it again). A top-1
            # cache is refreshed from the rows since its last_seq: it must survive a crash.
            f"CREATE {'' if refresh else 'UNLOGGED '}TABLE {cache} AS SELECT * FROM {live} "
            "WITH NO DATA",
            f"CREATE VIEW {tick} AS SELECT * FROM {cache}",
            f'CREATE VIEW "{name}" AS SELECT * FROM {tick} WHERE {kept} '
            f"UNION ALL SELECT * FROM {live} WHERE NOT {kept}",
            *(refresh[:2] if refresh else []),
            _view_row(
                name,
                "top1" if refresh else "cached",
                compiled.sources,
                ";\n".join(refresh[2:]) if refresh else None,
            ),
            *reads,
        ]
    if m.group("ine"):
        return [
            f'CREATE OR REPLACE VIEW "{name}" AS\n{body}',
            _tick_view(tick, compiled, "CREATE OR REPLACE VIEW"),
            *reads,
        ]
    return [
        f'CREATE VIEW "{name}" AS\n{body}',
        f"DROP VIEW IF EXISTS {tick} CASCADE",
        _tick_view(tick, compiled),
        *reads,
    ]


def _tick_view(target: str, compiled: CompiledQuery, verb: str = "CREATE VIEW") -> str:
    """Create view ``target`` as ``compiled`` reads inside the engine's tick: the views
    below through their tick relations (``gridctl_engine.tick_sql``). Without it each
    view would evaluate every view below it again, and their plans nest: planning the
    allocation views took longer than running them."""
    head = _lit(f"{verb} {target} AS\n")
    return (
        f"DO $gridctl$ BEGIN EXECUTE {head} || {SCHEMA}.tick_sql("
        f"{_lit(compiled.tick_sql)}, {_array(compiled.refs)}); END $gridctl$"
    )


def _reads_sql(name: str, reads: list[Read]) -> list[str]:
    """Record how far back view ``name`` reads each relation (retention follows them)."""
    out = [f"DELETE FROM {SCHEMA}.reads WHERE view = {_lit(name)}"]
    for r in reads:
        seconds = "NULL" if r.seconds is None else str(int(r.seconds))
        out.append(
            f"INSERT INTO {SCHEMA}.reads (view, relation, col, seconds, basis) VALUES "
            f"({_lit(name)}, {_lit(r.relation)}, {_lit(r.column)}, {seconds}, {_lit(r.basis)})"
        )
    return out


def _view_row(
    name: str,
    kind: str,
    sources: list[str],
    refresh: str | None = None,
    *,
    step: int | None = None,
) -> str:
    return (
        f"INSERT INTO {SCHEMA}.views (name, kind, sources, refresh_sql, window_step) VALUES "
        f"({_lit(name)}, {_lit(kind)}, {_array(sources)}, {_lit(refresh)}, "
        f"{'NULL' if step is None else int(step)}) "
        "ON CONFLICT (name) DO UPDATE SET kind = EXCLUDED.kind, sources = EXCLUDED.sources, "
        "refresh_sql = EXCLUDED.refresh_sql, window_step = EXCLUDED.window_step, "
        # a new, empty cache: read live until a tick fills it
        "last_seq = NULL, emitted_until = NULL, maintained = false, "
        # Re-created after what it reads: it must come after it in dependency order.
        f"seq = nextval(pg_get_serial_sequence('{SCHEMA}.views', 'seq'))"
    )


def compile_statement(sql: str) -> list[str]:
    """One RisingWave statement -> PostgreSQL statements to execute in order."""
    text, _ = strip_comments(sql)
    text = text.strip().rstrip(";").strip()
    head = " ".join(text.split()[:3]).upper()
    if not text:
        return []
    if head.startswith(("CREATE SOURCE", "CREATE TABLE")):
        return _relation_sql(parse_relation(sql), sql)
    if head.startswith("CREATE SINK"):
        return _sink_sql(sql)
    if head.startswith(("CREATE MATERIALIZED VIEW", "CREATE VIEW")):
        return _view_sql(sql, text)
    if head.startswith(("ALTER TABLE", "ALTER SOURCE")):
        return _alter_sql(sql, text)
    if head.startswith(("CREATE INDEX", "CREATE UNIQUE INDEX")):
        try:
            plain = sqlglot.transpile(text, read="risingwave", write="postgres")[0]
        except sqlglot.errors.ParseError as exc:
            raise CompileError(first_line(sql), f"does not parse: {exc}") from exc
        return [_index_sql(text, plain)]
    drop = _DROP.match(text)
    if drop:
        kind = " ".join(drop.group("kind").upper().split())
        name = unquote(drop.group("name"))
        if kind in ("MATERIALIZED VIEW", "VIEW", "SINK"):
            return compile_drop(kind, name)
        if kind in ("SOURCE", "TABLE"):
            return [
                f'DROP TABLE IF EXISTS "{name}" CASCADE',
                f"DELETE FROM {SCHEMA}.sources WHERE name = {_lit(name)}",
                *_orphan_sinks(),
            ]
        return [f'DROP INDEX IF EXISTS "{name}"']
    raise CompileError(first_line(sql), "statement kind is not compiled")


_INDEX = re.compile(
    rf"^\s*CREATE\s+(?:UNIQUE\s+)?INDEX\s+(?:IF\s+NOT\s+EXISTS\s+)?(?P<name>{_IDENT})\s+ON\s+"
    rf"(?P<rel>{_IDENT})\s*\((?P<cols>[^)]*)\)\s*$",
    re.I | re.S,
)


def _index_sql(text: str, plain: str) -> str:
    """An index as RisingWave allows it on a table or a materialized view (temporal joins
    look MVs up by one). On PostgreSQL a table gets it as written; a materialised view
    its per-tick cache; a plain view (evaluated from its tables' indexes) none."""
    m = _INDEX.match(text)
    if m is None:
        return plain
    name, rel, cols = unquote(m.group("name")), unquote(m.group("rel")), m.group("cols")
    cache = f"{SCHEMA}.{rel}__cache"
    on_cache = f'CREATE INDEX IF NOT EXISTS "{name}" ON {SCHEMA}."{rel}__cache" ({cols})'
    return (
        "DO $gridctl$ BEGIN\n"
        f"  IF to_regclass({_lit(cache)}) IS NOT NULL THEN EXECUTE {_lit(on_cache)};\n"
        f"  ELSIF (SELECT relkind FROM pg_class WHERE oid = to_regclass({_lit(rel)})) "
        f"IN ('r', 'p', 'm') THEN EXECUTE {_lit(plain)};\n"
        f"  ELSIF to_regclass({_lit(rel)}) IS NULL THEN RAISE EXCEPTION USING\n"
        "    ERRCODE = 'undefined_table',\n"
        f"    MESSAGE = {_lit(f'relation {chr(34)}{rel}{chr(34)} does not exist')};\n"
        "  END IF;\nEND $gridctl$"
    )


def _orphan_sinks() -> list[str]:
    # A sink reads a view; RisingWave drops sinks with the view (CASCADE). Do the same.
    return [f"DELETE FROM {SCHEMA}.sinks WHERE to_regclass(view_name) IS NULL"]


def compile_drop(kind: str, name: str) -> list[str]:
    """PostgreSQL statements dropping a compiled MATERIALIZED VIEW, VIEW or SINK.

    Views go with their dependents (CASCADE) and sinks reading a dropped view lose their
    catalog row, as RisingWave's ``DROP ... CASCADE`` would. A sink's emitted state stays,
    so a rebuilt sink of the same name does not emit everything again.
    """
    kind = " ".join(kind.upper().split())
    name = unquote(name)
    if kind in ("MATERIALIZED VIEW", "VIEW"):
        return [
            f'DROP VIEW IF EXISTS "{name}" CASCADE',
            f'DROP VIEW IF EXISTS {SCHEMA}."{name}__open" CASCADE',
            f'DROP VIEW IF EXISTS {SCHEMA}."{name}__live" CASCADE',
            f'DROP VIEW IF EXISTS {SCHEMA}."{name}__eval" CASCADE',
            f'DROP VIEW IF EXISTS {SCHEMA}."{name}__tick" CASCADE',
            f'DROP TABLE IF EXISTS {SCHEMA}."{name}__closed" CASCADE',
            f'DROP TABLE IF EXISTS {SCHEMA}."{name}__cache" CASCADE',
            f"DELETE FROM {SCHEMA}.views WHERE name = {_lit(name)}",
            f"DELETE FROM {SCHEMA}.reads WHERE view = {_lit(name)}",
            *_orphan_sinks(),
        ]
    if kind == "INDEX":
        # An index of a table, or of a materialised view's cache (see _index_sql).
        return [f'DROP INDEX IF EXISTS "{name}"', f'DROP INDEX IF EXISTS {SCHEMA}."{name}"']
    if kind == "SINK":
        return [
            f'DROP VIEW IF EXISTS {SCHEMA}."{name}__query"',
            f"DELETE FROM {SCHEMA}.sinks WHERE name = {_lit(name)}",
        ]
    raise CompileError(
        f"DROP {kind} {name}", "only MATERIALIZED VIEW, VIEW, SINK and INDEX are dropped"
    )
