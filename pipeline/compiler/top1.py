"""Incremental "latest row per key" views (RisingWave's group top-1) on PostgreSQL.

RisingWave keeps ``ROW_NUMBER() OVER (PARTITION BY k ORDER BY ts DESC) ... WHERE rn = 1``
as state and updates it per new row. Recomputed from scratch, PostgreSQL sorts every row
of the window each tick (10^5 rows at 10k connectors). But the latest row of a key among
*all* rows is the latest among (the previous result + the rows added since), and a filter
that drops a row (a freshness bound) drops the older rows of its key too. So when the
query has exactly this shape over one append-only table, orders by one column descending,
bounds time only from below on that column, and the outer columns are the inner ones, the
engine refreshes the result from the cache plus the rows whose
``_ingest_seq`` is newer than the last refresh; the result is the same.
"""

from __future__ import annotations

from sqlglot import exp

from pipeline.compiler.bootstrap import SCHEMA
from pipeline.compiler.query import rewrite

#: Column the compiler adds to append-only source tables: ingest order, for increments.
INGEST_SEQ = "_ingest_seq"


def top1_refresh_sql(name: str, tree: exp.Expression) -> list[str] | None:
    """Statements keeping the cache of view ``name`` up to date, if ``tree`` is an
    incremental top-1 (see the module docstring); None otherwise.

    The first statement creates the unique index on the keys the refresh needs; the rest
    are the refresh, run by the engine each tick: upsert the newest new row per key (newer
    rows win), then delete the rows the time bound no longer admits.
    """
    if not isinstance(tree, exp.Select) or tree.args.get("group") or tree.args.get("joins"):
        return None
    sub = tree.args.get("from_")
    sub = sub.this if sub is not None else None
    where = tree.args.get("where")
    if not isinstance(sub, exp.Subquery) or where is None:
        return None
    cond = where.this
    if not (
        isinstance(cond, exp.EQ)
        and isinstance(cond.this, exp.Column)
        and isinstance(cond.expression, exp.Literal)
        and cond.expression.this == "1"
    ):
        return None
    rn_name = cond.this.name
    inner = sub.this
    if not isinstance(inner, exp.Select) or inner.args.get("group") or inner.args.get("joins"):
        return None
    table = inner.args.get("from_")
    table = table.this if table is not None else None
    if not isinstance(table, exp.Table) or not isinstance(table.this, exp.Identifier):
        return None
    plain: list[str] = []
    window = None
    for e in inner.expressions:
        if isinstance(e, exp.Column):
            plain.append(e.name)
        elif isinstance(e, exp.Alias) and e.alias == rn_name and isinstance(e.this, exp.Window):
            window = e.this
        else:
            return None
    if window is None or not isinstance(window.this, exp.RowNumber):
        return None
    outer = [e.name for e in tree.expressions if isinstance(e, exp.Column)]
    if len(outer) != len(tree.expressions) or outer != plain:
        return None
    used = {c.name for c in inner.find_all(exp.Column)} - {rn_name}
    if not used <= set(plain) or any(c.table for c in inner.find_all(exp.Column)):
        return None
    keys = window.args.get("partition_by") or []
    if not keys or not all(isinstance(k, exp.Column) for k in keys):
        return None
    order = window.args.get("order")
    ordered = order.expressions if order is not None else []
    if (
        len(ordered) != 1
        or not ordered[0].args.get("desc")
        or not isinstance(ordered[0].this, exp.Column)
    ):
        return None
    ts = ordered[0].this.name
    inner_where = inner.args.get("where")
    expired: list[str] = []
    for part in _conjuncts(inner_where.this if inner_where else None):
        if _uses_now(part):
            if not (
                isinstance(part, exp.GT | exp.GTE)
                and isinstance(part.this, exp.Column)
                and part.this.name == ts
            ):
                return None  # only a lower bound on the ordering column may depend on time
            bound = rewrite(part.expression.copy()).sql(dialect="postgres")
            expired.append(f"{ts} {'<=' if isinstance(part, exp.GT) else '<'} {bound}")
    if not expired:
        return None  # without a time bound NULL timestamps would sort first: not handled
    pred = rewrite(inner_where.this.copy()).sql(dialect="postgres")  # type: ignore[union-attr]
    key_cols = ", ".join(k.name for k in keys)
    cols = ", ".join(plain)
    src = table.sql(dialect="postgres")
    cache = f'{SCHEMA}."{name}__cache"'
    last = f"COALESCE((SELECT last_seq FROM {SCHEMA}.views WHERE name = '{name}'), 0)"
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in plain if c not in {k.name for k in keys})
    top = f"(SELECT max({INGEST_SEQ}) FROM {src})"
    return [
        f'CREATE UNIQUE INDEX "{name}__cache__key" ON {cache} ({key_cols}) NULLS NOT DISTINCT',
        f'CREATE INDEX "{name}__cache__ts" ON {cache} ({ts})',
        # A range on the ingest sequence (not just a lower bound) makes the planner pick
        # its index: only the rows ingested since the last refresh are read.
        f"WITH fresh AS (SELECT DISTINCT ON ({key_cols}) {cols} FROM {src} "
        f"WHERE {INGEST_SEQ} > {last} AND {INGEST_SEQ} <= {top} AND ({pred}) "
        f"ORDER BY {key_cols}, {ts} DESC), "
        f"mark AS (UPDATE {SCHEMA}.views SET last_seq = COALESCE("
        f"(SELECT max({INGEST_SEQ}) FROM {src}), last_seq) WHERE name = '{name}') "
        f"INSERT INTO {cache} AS c SELECT {cols} FROM fresh ON CONFLICT ({key_cols}) "
        f"DO UPDATE SET {updates or f'{ts} = EXCLUDED.{ts}'} WHERE c.{ts} < EXCLUDED.{ts}",
        # Rows in the cache passed the static conditions; only the time bound expires them.
        f"DELETE FROM {cache} WHERE {' OR '.join(expired)}",
    ]


def _conjuncts(node: exp.Expression | None) -> list[exp.Expression]:
    if node is None:
        return []
    if isinstance(node, exp.And):
        return _conjuncts(node.this) + _conjuncts(node.expression)
    if isinstance(node, exp.Paren):
        return _conjuncts(node.this)
    return [node]


def _uses_now(node: exp.Expression) -> bool:
    return any(True for _ in node.find_all(exp.CurrentTimestamp)) or any(
        a.name.upper() in ("NOW", "PROCTIME") for a in node.find_all(exp.Anonymous)
    )
