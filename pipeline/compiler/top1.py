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


def top1_refresh_sql(name: str, tree: exp.Expression) -> str | None:
    """The refresh statement of view ``name`` if ``tree`` is an incremental top-1, else None."""
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
    order = window.args.get("order")
    keys = order.expressions if order is not None else []
    if len(keys) != 1 or not keys[0].args.get("desc") or not isinstance(keys[0].this, exp.Column):
        return None
    order_col = keys[0].this.name
    inner_where = inner.args.get("where")
    for part in _conjuncts(inner_where.this if inner_where else None):
        if _uses_now(part) and not (
            isinstance(part, exp.GT | exp.GTE)
            and isinstance(part.this, exp.Column)
            and part.this.name == order_col
        ):
            return None  # only a lower bound on the ordering column may depend on time
    window_sql = rewrite(window.copy()).sql(dialect="postgres")
    pred = rewrite(inner_where.this.copy()).sql(dialect="postgres") if inner_where else "TRUE"
    cols = ", ".join(plain)
    src = table.sql(dialect="postgres")
    cache = f'{SCHEMA}."{name}__cache"'
    last = f"COALESCE((SELECT last_seq FROM {SCHEMA}.views WHERE name = '{name}'), 0)"
    return (
        f"WITH cand AS (SELECT {cols} FROM {cache} "
        f"UNION ALL SELECT {cols} FROM {src} WHERE {INGEST_SEQ} > {last}), "
        f"ranked AS (SELECT {cols}, {window_sql} AS {rn_name} FROM cand WHERE {pred}), "
        f"mark AS (UPDATE {SCHEMA}.views SET last_seq = COALESCE("
        f"(SELECT max({INGEST_SEQ}) FROM {src}), last_seq) WHERE name = '{name}'), "
        f"gone AS (DELETE FROM {cache}) "
        f"INSERT INTO {cache} SELECT {cols} FROM ranked WHERE {rn_name} = 1"
    )


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
