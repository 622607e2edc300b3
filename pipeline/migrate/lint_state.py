"""Lint rules that need the whole pipeline: bounded state and append-only sinks.

RisingWave keeps a join's or an aggregation's state until a watermark or a temporal filter
reaches it (``risingwave-notes.md``, "State is cleaned only where..."). Whether an input
grows with time is a fact about the object it reads, defined in another statement (or
file), so these rules first walk every statement in apply order and note, per object:

- *growing*: its rows accumulate with time. Append-only sources and ``APPEND ONLY``
  tables grow; so does a view that reads a growing input without a temporal filter and
  does not fold it into keys that stop growing (``GROUP BY station_id`` stops, grouping
  by ``window_start`` or projecting does not). EMIT ON WINDOW CLOSE views grow by a row
  per window.
- *append-only*: it never updates or deletes a row (what a PLAIN sink needs).

Then, per SELECT scope that joins or aggregates: every growing input needs a cleaning
condition RisingWave honours, one of

- a temporal filter on one of its columns in WHERE or ON: ``col > NOW() - INTERVAL ...``
  (also ``>=``, or ``NOW() - ... < col``);
- under EMIT ON WINDOW CLOSE, a TUMBLE/HOP over a source with a watermark (or a derived
  table built that way), with every join of the scope a process-time temporal join
  (``FOR SYSTEM_TIME AS OF PROCTIME()`` keeps no state for the stream side).

A regular join to a growing input with only range conditions on it (a baseline joined to
all history) is the case the review found; it is a finding.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from sqlglot import exp

from pipeline.compiler.query import temporal_bounds
from pipeline.migrate.sqltext import SqlParseError, mask, parse

Emit = Callable[[str, str], None]

#: the rule whose findings ``migrate up`` refuses (RisingWave rejects the statement)
REFUSED = "plain-sink-not-append-only"

_SOURCE = re.compile(
    r"^\s*CREATE\s+(?P<kind>SOURCE|TABLE)\s+(?:IF\s+NOT\s+EXISTS\s+)?(?P<name>[\w\"]+)", re.I
)
_VIEW = re.compile(
    r"^\s*CREATE\s+(?:MATERIALIZED\s+)?VIEW\s+(?:IF\s+NOT\s+EXISTS\s+)?(?P<name>[\w\"]+)", re.I
)
_SINK = re.compile(
    r"^\s*CREATE\s+SINK\s+(?:IF\s+NOT\s+EXISTS\s+)?(?P<name>[\w\"]+)\s+FROM\s+(?P<view>[\w\"]+)",
    re.I,
)
_EOWC = re.compile(r"\bEMIT\s+ON\s+WINDOW\s+CLOSE\b", re.I)
_APPEND_ONLY = re.compile(r"\bAPPEND\s+ONLY\b", re.I)
_PRIMARY_KEY = re.compile(r"\bPRIMARY\s+KEY\b", re.I)
_WATERMARK = re.compile(r"\bWATERMARK\s+FOR\s+(?P<col>\w+)", re.I)
_FORMAT = re.compile(r"\bFORMAT\s+(?P<fmt>\w+)\s+ENCODE\b", re.I)
_FORCE = re.compile(r"force_append_only\s*=\s*'?true'?", re.I)
_WINDOW_COLS = {"window_start", "window_end"}


@dataclass
class Facts:
    """What the rules know about one object."""

    growing: bool
    append_only: bool
    watermark: str | None = None


def _name(raw: str) -> str:
    return raw.strip('"').lower() if raw.startswith('"') else raw.lower()


@dataclass
class _Input:
    """One relation a SELECT scope reads (FROM or JOIN)."""

    node: exp.Expr
    alias: str
    name: str | None  # the object's name (None: a derived table)
    growing: bool
    windowed: bool  # TUMBLE/HOP over it
    watermark_cleaned: bool  # EOWC over a watermarked input reaches its state
    temporal_join: bool  # FOR SYSTEM_TIME AS OF: no state on this side


class StateRules:
    """Walks statements in apply order; ``check`` emits the findings of one statement."""

    def __init__(self) -> None:
        self.facts: dict[str, Facts] = {}

    # -- catalog -----------------------------------------------------------------------
    def learn(self, text: str) -> None:
        """Record what ``text`` (one statement, ``${var}`` filled) creates."""
        masked = mask(text)
        m = _SOURCE.match(masked)
        if m:
            keyed = bool(_PRIMARY_KEY.search(masked))
            append = m.group("kind").upper() == "SOURCE" or bool(_APPEND_ONLY.search(masked))
            append = append or not keyed
            wm = _WATERMARK.search(masked)
            mark = wm.group("col").lower() if wm else None
            self.facts[_name(m.group("name"))] = Facts(append, append, mark)
            return
        m = _VIEW.match(masked)
        if m:
            try:
                tree = parse(text)
            except SqlParseError:
                return
            query = tree.expression if isinstance(tree, exp.Create) else None
            if isinstance(query, exp.Query):
                eowc = bool(_EOWC.search(masked))
                self.facts[_name(m.group("name"))] = Facts(
                    growing=eowc or self._output_growing(query, eowc),
                    append_only=eowc or self._append_only(query),
                )

    # -- rules -------------------------------------------------------------------------
    def check(self, text: str, emit: Emit) -> None:
        masked = mask(text)
        m = _SINK.match(masked)
        if m:
            self._check_sink(m.group("view"), text, masked, emit)
            return
        if not _VIEW.match(masked):
            return
        try:
            tree = parse(text)
        except SqlParseError:
            return  # the parse rule reports it
        query = tree.expression if isinstance(tree, exp.Create) else None
        if not isinstance(query, exp.Query):
            return
        eowc = bool(_EOWC.search(masked))
        for select in query.find_all(exp.Select):
            if not _stateful(select):
                continue
            inputs = self._inputs(select, eowc)
            plain_joins = any(not i.temporal_join for i in inputs[1:])
            if not plain_joins and not _aggregating(select):
                continue  # only process-time lookups: no state for the stream side
            for i in inputs:
                if not i.growing or i.temporal_join or _filtered(select, i, len(inputs)):
                    continue
                if i.watermark_cleaned and not plain_joins:
                    continue
                if len(inputs) == 1 and self._keyed_aggregate(select, i):
                    continue
                what = "a join" if len(inputs) > 1 else "an aggregation"
                label = i.name or f"subquery {i.alias}"
                emit(
                    "unbounded-state",
                    f"{what} over {label}, which grows with time, keeps state forever: add a "
                    f"temporal filter on {label} (col > NOW() - INTERVAL ...) or read it "
                    "through a watermarked window under EMIT ON WINDOW CLOSE",
                )

    def _keyed_aggregate(self, select: exp.Select, inp: _Input) -> bool:
        """An aggregation of an append-only input grouped by keys that do not grow with
        time (``GROUP BY station_id``) keeps one state row per group (append-only
        aggregates need no retraction state): bounded by the keys, not by time."""
        if inp.name is not None:
            append_only = self.facts.get(inp.name, Facts(False, False)).append_only
        else:
            append_only = self._append_only(inp.node.this)  # type: ignore[arg-type]
        return append_only and not _time_keyed(select) and not select.args.get("distinct")

    def _check_sink(self, view: str, text: str, masked: str, emit: Emit) -> None:
        fmt = _FORMAT.search(masked)
        # The option's value is a string (blank in the mask); its name must not be in a comment.
        forced = any(
            masked[m.start() : m.start() + 17].lower() == "force_append_only"
            for m in _FORCE.finditer(text)
        )
        if fmt is None or fmt.group("fmt").upper() != "PLAIN" or forced:
            return
        facts = self.facts.get(_name(view))
        if facts is not None and not facts.append_only:
            emit(
                REFUSED,
                f"FORMAT PLAIN sink over {_name(view)}, which updates or deletes rows: "
                "RisingWave rejects it; use FORMAT UPSERT, or FORMAT PLAIN ENCODE JSON "
                "(force_append_only = 'true') if every update may become a new record",
            )

    # -- analysis ----------------------------------------------------------------------
    def _inputs(self, select: exp.Select, eowc: bool) -> list[_Input]:
        nodes: list[exp.Expr] = []
        from_ = select.args.get("from_")
        if from_ is not None:
            nodes.append(from_.this)
        nodes += [j.this for j in select.args.get("joins") or []]
        out: list[_Input] = []
        for node in nodes:
            alias = node.alias_or_name.lower() if hasattr(node, "alias_or_name") else ""
            if isinstance(node, exp.Subquery) and isinstance(node.this, exp.Query):
                inner = node.this
                growing = self._output_growing(inner, eowc)
                cleaned = eowc and self._inner_cleaned(inner)
                out.append(_Input(node, alias, None, growing, False, cleaned, False))
                continue
            if not isinstance(node, exp.Table):
                continue
            windowed = isinstance(node.this, exp.Anonymous) and node.this.name.upper() in (
                "TUMBLE",
                "HOP",
            )
            name = (
                node.this.expressions[0].name.lower()
                if windowed and node.this.expressions
                else node.name.lower()
            )
            if windowed and not node.alias:
                alias = name
            facts = self.facts.get(name)
            growing = bool(facts and facts.growing)
            cleaned = eowc and windowed and bool(facts and facts.watermark)
            temporal = node.args.get("version") is not None
            out.append(_Input(node, alias, name, growing, windowed, cleaned, temporal))
        return out

    def _inner_cleaned(self, query: exp.Query) -> bool:
        """A derived table under EOWC whose growing inputs are all watermark-cleaned and
        grouped by window: the watermark reaches its state."""
        selects = list(query.find_all(exp.Select))
        for select in selects:
            inputs = self._inputs(select, True)
            for i in inputs:
                exposed = i.growing and not i.temporal_join and not i.watermark_cleaned
                if exposed and not _filtered(select, i, len(inputs)):
                    return False
        return True

    def _output_growing(self, query: exp.Query, eowc: bool) -> bool:
        if isinstance(query, exp.Union):
            return self._output_growing(query.left, eowc) or self._output_growing(query.right, eowc)
        if not isinstance(query, exp.Select):
            return False
        inputs = self._inputs(query, eowc)
        unbounded = [i for i in inputs if i.growing and not _filtered(query, i, len(inputs))]
        if not unbounded:
            return False
        if query.args.get("group") is None:
            return not _aggregates(query)  # a projection grows; a global aggregate is one row
        return _time_keyed(query)

    def _append_only(self, query: exp.Query) -> bool:
        if isinstance(query, exp.Union):
            return (
                bool(query.args.get("distinct")) is False
                and self._append_only(query.left)
                and self._append_only(query.right)
            )
        if not isinstance(query, exp.Select) or _stateful(query):
            return False
        if any(True for _ in query.find_all(exp.CurrentTimestamp)):
            return False  # a temporal filter deletes rows when they stop qualifying
        inputs = self._inputs(query, False)
        return bool(inputs) and all(
            (i.name is not None and self.facts.get(i.name, Facts(False, False)).append_only)
            or (i.name is None and self._append_only(i.node.this))  # type: ignore[arg-type]
            for i in inputs
        )


def _time_keyed(select: exp.Select) -> bool:
    """Grouped (or partitioned) by a key that grows with time: a window bound or a
    timestamp column (``*_ts``)?"""
    keys: set[str] = set()
    group = select.args.get("group")
    if group is not None:
        keys |= {c.name.lower() for c in group.find_all(exp.Column)}
    for window in select.find_all(exp.Window):
        if _scope_of(window) is select:
            for part in window.args.get("partition_by") or []:
                keys |= {c.name.lower() for c in part.find_all(exp.Column)}
    return bool(keys & _WINDOW_COLS) or any(k.endswith("ts") for k in keys)


def _aggregates(select: exp.Select) -> bool:
    return any(_scope_of(n) is select for n in select.find_all(exp.AggFunc, exp.Window))


def _aggregating(select: exp.Select) -> bool:
    return bool(select.args.get("group") or select.args.get("distinct") or _aggregates(select))


def _stateful(select: exp.Select) -> bool:
    """Does this scope keep state: a join, a grouping, an aggregate or a window function?"""
    return bool(
        select.args.get("joins")
        or select.args.get("group")
        or select.args.get("distinct")
        or _aggregates(select)
    )


def _scope_of(node: exp.Expr) -> exp.Expr | None:
    parent = node.parent
    while parent is not None and not isinstance(parent, exp.Select):
        parent = parent.parent
    return parent


def _filtered(select: exp.Select, inp: _Input, n_inputs: int) -> bool:
    """Is there a temporal filter (lower bound from NOW()) on a column of ``inp``?"""
    for col, _ in temporal_bounds(select):
        owner = col.table.lower()
        if owner == inp.alias or (not owner and n_inputs == 1):
            return True
    return False
