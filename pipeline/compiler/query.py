"""Rewriting a RisingWave streaming query into a PostgreSQL batch query.

A materialized view in RisingWave is the query's result kept up to date; a PostgreSQL
view evaluated at a given engine time gives the same rows, provided that:

- ``TUMBLE(src, ts, size)`` becomes a subquery adding ``window_start``/``window_end`` with
  ``date_bin`` (windows aligned as RisingWave aligns them), ``HOP`` a lateral series of the
  windows each row falls in;
- ``NOW()``/``PROCTIME()`` read the engine clock (``gridctl_engine.now()``), so that replay
  runs on a virtual clock;
- ``FOR SYSTEM_TIME AS OF PROCTIME()`` is dropped: a plain join is its batch meaning;
- the scans of TUMBLE/HOP start at ``gridctl_engine.window_since(size, source)``: the
  engine sets it while it appends newly closed windows of EMIT ON WINDOW CLOSE views, so
  only windows not closed before are computed; otherwise it is minus infinity.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp

from pipeline.compiler.bootstrap import SCHEMA, WINDOW_ORIGIN

_UNITS = {
    "second": 1, "seconds": 1, "sec": 1, "secs": 1, "s": 1,
    "minute": 60, "minutes": 60, "min": 60, "mins": 60, "m": 60,
    "hour": 3600, "hours": 3600, "h": 3600,
    "day": 86400, "days": 86400, "d": 86400,
}  # fmt: skip


class QueryError(ValueError):
    """A construct the rewrite does not handle; the caller wraps it in a CompileError."""


def interval_seconds(node: exp.Expression) -> int:
    """Seconds of an ``INTERVAL '5 MINUTES'`` literal (compile-time window sizes)."""
    if not isinstance(node, exp.Interval):
        raise QueryError(f"window size must be an INTERVAL literal, got {node.sql()}")
    text = node.this.name if node.this is not None else ""
    unit = node.args.get("unit")
    if unit is not None:
        text = f"{text} {unit.name}"
    m = re.fullmatch(r"\s*(\d+)\s*([A-Za-z]+)\s*", text)
    if m is None or m.group(2).lower() not in _UNITS:
        raise QueryError(f"cannot read interval {node.sql()}")
    return int(m.group(1)) * _UNITS[m.group(2).lower()]


def _interval(seconds: int) -> str:
    return f"INTERVAL '{seconds} SECONDS'"


def _window_subquery(func: exp.Anonymous, alias: str) -> exp.Expression:
    name = func.name.upper()
    args = func.expressions
    if not args or not isinstance(args[0], exp.Column | exp.Table):
        raise QueryError(f"{name}: the first argument must be a relation name")
    src = args[0].sql(dialect="postgres")
    src_name = "'" + args[0].name.lower().replace("'", "''") + "'"
    if len(args) < 3 or not isinstance(args[1], exp.Column):
        raise QueryError(f"{name}: the second argument must be a plain column")
    ts = args[1].sql(dialect="postgres")
    if name == "TUMBLE":
        if len(args) != 3:
            raise QueryError("TUMBLE(relation, column, size) takes 3 arguments")
        size = _interval(interval_seconds(args[2]))
        inner = (
            f"SELECT w.*, date_bin({size}, w.{ts}, {WINDOW_ORIGIN}) AS window_start, "
            f"date_bin({size}, w.{ts}, {WINDOW_ORIGIN}) + {size} AS window_end "
            f"FROM {src} AS w WHERE w.{ts} >= {SCHEMA}.window_since({size}, {src_name})"
        )
    else:
        if len(args) != 4:
            raise QueryError("HOP(relation, column, slide, size) takes 4 arguments")
        slide_s, size_s = interval_seconds(args[2]), interval_seconds(args[3])
        if size_s % slide_s:
            raise QueryError("HOP: size must be a multiple of slide")
        slide, size = _interval(slide_s), _interval(size_s)
        n = size_s // slide_s
        start = f"date_bin({slide}, w.{ts}, {WINDOW_ORIGIN}) - k.k * {slide}"
        inner = (
            f"SELECT w.*, {start} AS window_start, {start} + {size} AS window_end "
            f"FROM {src} AS w CROSS JOIN generate_series(0, {n - 1}) AS k(k) "
            f"WHERE w.{ts} >= {SCHEMA}.window_since({slide}, {src_name}) "
            f"AND {start} >= {SCHEMA}.window_since({slide}, {src_name})"
        )
    sub = sqlglot.parse_one(inner, read="postgres")
    return exp.Subquery(this=sub, alias=exp.TableAlias(this=exp.to_identifier(alias)))


def _engine_now() -> exp.Expression:
    return sqlglot.parse_one(f"{SCHEMA}.now()", read="postgres")


def rewrite(tree: exp.Expression) -> exp.Expression:
    """Apply the rewrites of the module docstring to a parsed RisingWave query."""

    def visit(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Table):
            if node.args.get("version") is not None:
                node.set("version", None)
            inner = node.this
            if isinstance(inner, exp.Anonymous) and inner.name.upper() in ("TUMBLE", "HOP"):
                alias = node.alias or inner.expressions[0].name
                return _window_subquery(inner, alias)
            return node
        if isinstance(node, exp.CurrentTimestamp):
            return _engine_now()
        if isinstance(node, exp.Anonymous) and node.name.upper() in ("NOW", "PROCTIME"):
            return _engine_now()
        return node

    return tree.transform(visit)


def source_names(tree: exp.Expression) -> list[str]:
    """Names of relations read directly (for watermarks of EMIT ON WINDOW CLOSE)."""
    names: list[str] = []
    for table in tree.find_all(exp.Table):
        inner = table.this
        if isinstance(inner, exp.Anonymous) and inner.expressions:
            names.append(inner.expressions[0].name.lower())
        elif table.name:
            names.append(table.name.lower())
    return list(dict.fromkeys(names))


@dataclass(frozen=True)
class Read:
    """How far back a view reads a relation: rows with ``column`` older than ``seconds``
    before ``basis`` (``'now'``: a temporal filter; ``'watermark'``: a window under EMIT ON
    WINDOW CLOSE, whose closed windows are never read again) are never needed again.
    ``seconds`` None: the view reads all of it (nothing may be trimmed)."""

    relation: str
    column: str | None
    seconds: int | None
    basis: str


@dataclass(frozen=True)
class CompiledQuery:
    """A rewritten query and what the engine needs to know about it."""

    sql: str
    sources: list[str]  # relations read directly (watermarks of EMIT ON WINDOW CLOSE)
    windowed: bool  # uses TUMBLE or HOP
    aggregating: bool  # GROUP BY, aggregates or window functions: worth materialising
    joining: bool = False  # joins, set operations or subqueries: worth materialising too
    reads: list[Read] = field(default_factory=list)  # retention follows these
    #: the same query with every relation it reads replaced by a marker
    #: (:data:`REF_SCHEMA`), resolved when the view is created (``tick_sql`` in bootstrap)
    tick_sql: str = ""
    refs: list[str] = field(default_factory=list)  # the relations behind the markers
    #: seconds between window ends (gcd of the TUMBLE sizes and HOP slides; None: none)
    window_step: int | None = None


#: Schema name of the markers in :attr:`CompiledQuery.tick_sql`. Inside the engine's tick
#: a view reads what the tick already computed of the views below it (their per-tick
#: caches), not their definitions again; which relation that is is known only when the
#: view is created, so the compiler marks each relation read and PostgreSQL resolves the
#: marks (``gridctl_engine.tick_sql``): a view with a tick relation (``name__tick``) is read
#: there, a table as itself.
REF_SCHEMA = "gridctl_ref"


def mark_relations(tree: exp.Expression) -> tuple[exp.Expression, list[str]]:
    """``tree`` with each unqualified relation replaced by ``"gridctl_ref"."name"``
    (aliased as before, or by its own name so column references still resolve)."""
    ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
    refs: list[str] = []

    def visit(node: exp.Expression) -> exp.Expression:
        if not isinstance(node, exp.Table) or node.args.get("db") or node.args.get("catalog"):
            return node
        ident = node.this
        if not isinstance(ident, exp.Identifier):
            return node
        name = ident.this if ident.quoted else ident.this.lower()
        if name in ctes:
            return node
        refs.append(name)
        marked = exp.Table(
            this=exp.to_identifier(name, quoted=True),
            db=exp.to_identifier(REF_SCHEMA, quoted=True),
        )
        alias = node.args.get("alias") or exp.TableAlias(this=exp.to_identifier(name))
        marked.set("alias", alias)
        return marked

    return tree.copy().transform(visit), list(dict.fromkeys(refs))


def _conjuncts(node: exp.Expression | None) -> list[exp.Expression]:
    while isinstance(node, exp.Paren):
        node = node.this
    if node is None:
        return []
    if isinstance(node, exp.And):
        return _conjuncts(node.this) + _conjuncts(node.expression)
    return [node]


def _lookback(bound: exp.Expression) -> int | None:
    """Seconds of ``NOW() - INTERVAL 'x'`` (0 for a bare ``NOW()``), None for other shapes."""
    while isinstance(bound, exp.Paren):
        bound = bound.this
    if isinstance(bound, exp.CurrentTimestamp) or (
        isinstance(bound, exp.Anonymous) and bound.name.upper() == "NOW"
    ):
        return 0
    if isinstance(bound, exp.Sub) and _lookback(bound.this) == 0:
        try:
            return interval_seconds(bound.expression)
        except QueryError:
            return None
    return None


def temporal_bounds(select: exp.Select) -> list[tuple[exp.Column, int]]:
    """The temporal filters of one SELECT (its WHERE and ON conjuncts) that bound a column
    from below: ``col > NOW() - INTERVAL 'x'`` (also ``>=``, ``NOW() - ... < col``), each
    as the column and ``x`` in seconds. What RisingWave cleans state by; retention (here)
    and the bounded-state lint rule read them."""
    where = select.args.get("where")
    conds = _conjuncts(where.this) if where is not None else []
    for join in select.args.get("joins") or []:
        conds += _conjuncts(join.args.get("on"))
    out = []
    for cond in conds:
        if isinstance(cond, exp.GT | exp.GTE):
            col, bound = cond.this, cond.expression
        elif isinstance(cond, exp.LT | exp.LTE):
            col, bound = cond.expression, cond.this
        else:
            continue
        seconds = _lookback(bound)
        if isinstance(col, exp.Column) and seconds is not None:
            out.append((col, seconds))
    return out


def reads(tree: exp.Expression, eowc: bool) -> list[Read]:
    """Every relation the query reads and how far back (see :class:`Read`): per reference,
    the temporal filter on one of its columns in its SELECT's WHERE or ON, or, under EMIT
    ON WINDOW CLOSE, the window of a TUMBLE/HOP over it; otherwise all of it."""
    out: list[Read] = []
    for select in tree.find_all(exp.Select):
        refs: list[tuple[exp.Table, str, str]] = []
        nodes = []
        if select.args.get("from_") is not None:
            nodes.append(select.args["from_"].this)
        nodes += [j.this for j in select.args.get("joins") or []]
        for node in nodes:
            if not isinstance(node, exp.Table):
                continue
            inner = node.this
            if isinstance(inner, exp.Anonymous) and inner.name.upper() in ("TUMBLE", "HOP"):
                name = inner.expressions[0].name.lower()
            else:
                name = node.name.lower()
            refs.append((node, name, (node.alias or name).lower()))
        bounds = temporal_bounds(select)
        for node, name, alias in refs:
            read = None
            for col, seconds in bounds:
                owner = col.table.lower()
                mine = owner == alias or (owner == "" and len(refs) == 1)
                if mine and (read is None or (read.seconds or 0) < seconds):
                    read = Read(name, col.name.lower(), seconds, "now")
            inner = node.this
            windowed = isinstance(inner, exp.Anonymous) and inner.name.upper() in ("TUMBLE", "HOP")
            if read is None and eowc and windowed:
                args = inner.expressions
                size = interval_seconds(args[-1])
                read = Read(name, args[1].name.lower(), size, "watermark")
            out.append(read or Read(name, None, None, "now"))
    return out


def compile_query(text: str, *, eowc: bool = False) -> CompiledQuery:
    """RisingWave SELECT text -> PostgreSQL SELECT text and facts about it."""
    try:
        tree = sqlglot.parse_one(text, read="risingwave")
    except sqlglot.errors.ParseError as exc:
        raise QueryError(f"does not parse: {str(exc).splitlines()[0]}") from exc
    if not isinstance(tree, exp.Query):
        raise QueryError("expected a SELECT query")
    names = source_names(tree)
    windowed = any(
        isinstance(t.this, exp.Anonymous) and t.this.name.upper() in ("TUMBLE", "HOP")
        for t in tree.find_all(exp.Table)
    )
    steps = [
        interval_seconds(t.this.expressions[2])
        for t in tree.find_all(exp.Table)
        if isinstance(t.this, exp.Anonymous)
        and t.this.name.upper() in ("TUMBLE", "HOP")
        and len(t.this.expressions) >= 3
    ]
    aggregating = any(True for _ in tree.find_all(exp.Group, exp.AggFunc, exp.Window))
    joining = any(True for _ in tree.find_all(exp.Join, exp.SetOperation, exp.Exists))
    needs = reads(tree, eowc)
    tree = rewrite(tree)
    marked, refs = mark_relations(tree)
    return CompiledQuery(
        tree.sql(dialect="postgres"),
        names,
        windowed,
        aggregating,
        joining=joining,
        reads=needs,
        tick_sql=marked.sql(dialect="postgres"),
        refs=refs,
        window_step=math.gcd(*steps) if steps else None,
    )


def output_columns(text: str) -> list[str]:
    """Output column names of a RisingWave query (for checks such as EOWC's window_end)."""
    tree = sqlglot.parse_one(text, read="risingwave")
    return list(tree.named_selects) if isinstance(tree, exp.Query) else []
