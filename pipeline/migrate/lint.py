"""``gridctl migrate lint``: RisingWave rules checked before the SQL meets a server.

No RisingWave runs on our machines, so the migrations must be right by construction. Every
statement must parse with sqlglot's RisingWave dialect (after the opaque clauses are taken
off), and obey the project rules from ``risingwave-notes.md``. Each rule has an id; each
finding names file, statement, line, rule and what to do instead.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlglot import exp

from pipeline.migrate.errors import NamingError
from pipeline.migrate.files import (
    Statement,
    load_vars,
    parse_name,
    placeholders,
    split_statements,
    substitute,
    variables_in,
)
from pipeline.migrate.lint_state import StateRules
from pipeline.migrate.sqltext import SqlParseError, mask, parse


@dataclass(frozen=True)
class Finding:
    """One rule violation."""

    script: str
    statement: int
    line: int
    rule: str
    message: str

    def __str__(self) -> str:
        return (
            f"{self.script}:{self.line}: statement {self.statement}: [{self.rule}] {self.message}"
        )


#: rule id -> one-line description (``gridctl migrate lint --rules`` prints these)
RULES: dict[str, str] = {
    "naming": "file names follow V<version>__<desc>.sql / R__<desc>.sql",
    "parse": "every statement parses with sqlglot's RisingWave dialect",
    "now-outside-filter": "NOW() only in WHERE, HAVING, ON or FROM (temporal filters)",
    "or-temporal-filters": "two temporal filters may not be joined by OR",
    "round-double": "ROUND(x, n) needs x::NUMERIC, or arithmetic on one (no ROUND(double, n))",
    "create-or-replace": "no CREATE OR REPLACE (RisingWave cannot replace; use R files)",
    "upsert-sink-primary-key": "FORMAT UPSERT sinks name primary_key",
    "for-timestamp-as-of": "no FOR TIMESTAMP AS OF (write FOR SYSTEM_TIME AS OF PROCTIME())",
    "host-literal": "no hosts, IPs or localhost in WITH options: use a ${var}",
    "window-partition": "window functions need a non-empty PARTITION BY",
    "unbounded-state": "a join or aggregation over a growing input has a cleaning condition "
    "(temporal filter, or a watermarked window under EMIT ON WINDOW CLOSE)",
    "plain-sink-not-append-only": "a FORMAT PLAIN sink reads an append-only view, or says "
    "force_append_only = 'true'",
}

_OPTION = re.compile(r"([A-Za-z_][\w.]*)\s*=\s*'")
_HOST = re.compile(
    r"\blocalhost\b|://|\b\d{1,3}(?:\.\d{1,3}){3}\b|(?<![\w$}])[A-Za-z][\w-]*(?:\.[\w-]+)*:\d{2,5}\b",
    re.IGNORECASE,
)
_CREATE_OR_REPLACE = re.compile(r"\bCREATE\s+OR\s+REPLACE\b", re.IGNORECASE)
_FOR_TIMESTAMP = re.compile(r"\bFOR\s+TIMESTAMP\s+AS\s+OF\b", re.IGNORECASE)
_UPSERT_SINK = re.compile(r"^\s*CREATE\s+SINK\b[\s\S]*\bFORMAT\s+UPSERT\b", re.IGNORECASE)
_PRIMARY_KEY = re.compile(r"\bprimary_key\s*=", re.IGNORECASE)

_OPTION_BLOCK = re.compile(r"\bWITH\s*\(|\bENCODE\s+\w+\s*\(", re.IGNORECASE)

Emit = Callable[[str, str], None]


def _option_blocks(masked: str) -> Iterator[tuple[int, int]]:
    """Spans of ``WITH (...)`` and ``ENCODE x (...)`` option lists (not CTEs: ``WITH x AS (``)."""
    for m in _OPTION_BLOCK.finditer(masked):
        depth, i = 1, m.end()
        while i < len(masked) and depth:
            depth += {"(": 1, ")": -1}.get(masked[i], 0)
            i += 1
        yield m.end(), i


def _text_rules(raw: str, emit: Emit) -> None:
    """Rules read off the original text (they hold even when sqlglot cannot parse it)."""
    masked = mask(raw)
    if _CREATE_OR_REPLACE.search(masked):
        emit(
            "create-or-replace",
            "CREATE OR REPLACE is not supported; put the object in an "
            "R__ file and let migrate rebuild it",
        )
    if _FOR_TIMESTAMP.search(masked):
        emit(
            "for-timestamp-as-of",
            "FOR TIMESTAMP AS OF is not RisingWave; use FOR SYSTEM_TIME AS OF PROCTIME()",
        )
    if _UPSERT_SINK.search(masked) and not _PRIMARY_KEY.search(masked):
        emit("upsert-sink-primary-key", "FORMAT UPSERT sink without primary_key='...' in WITH")
    for lo, hi in _option_blocks(masked):
        for m in _OPTION.finditer(masked, lo, hi):
            start = m.end()
            end = masked.find("'", start)
            value = raw[start : end if end >= 0 else len(raw)]
            if _HOST.search(value):
                emit(
                    "host-literal",
                    f"option {m.group(1)} = {value!r} hard-codes a host; use ${{var}}",
                )


_NUMERIC = (exp.DataType.Type.DECIMAL, exp.DataType.Type.BIGDECIMAL)
_FLOATING = (exp.DataType.Type.DOUBLE, exp.DataType.Type.FLOAT)
_ARITHMETIC = (exp.Add, exp.Sub, exp.Mul, exp.Div, exp.Mod)


def _is_numeric(node: exp.Expr) -> bool:
    """Is ``node`` NUMERIC by construction: a ``::NUMERIC`` cast, or arithmetic on one with no
    explicitly floating operand (NUMERIC op INTEGER stays NUMERIC in both engines)?"""
    while isinstance(node, exp.Paren | exp.Neg):
        node = node.this
    if isinstance(node, exp.Cast):
        return node.to.is_type(*_NUMERIC)
    if isinstance(node, _ARITHMETIC):
        sides = [node.this, node.expression]
        floating = any(
            (isinstance(x, exp.Cast) and x.to.is_type(*_FLOATING))
            or (isinstance(x, exp.Literal) and not x.is_string and "." in x.name)
            for x in sides
        )
        return not floating and any(_is_numeric(x) for x in sides)
    return False


def _now_allowed(node: exp.Expr) -> bool:
    """Walk up to the nearest SELECT: allowed if we pass through WHERE, HAVING, ON or FROM."""
    child, parent = node, node.parent
    while parent is not None:
        if isinstance(parent, exp.Where | exp.Having | exp.From):
            return True
        if isinstance(parent, exp.Join) and child.arg_key in ("on", "this"):
            return True
        if isinstance(parent, exp.Select):
            return False
        child, parent = parent, parent.parent
    return True  # not inside a query (a column DEFAULT, say)


def _now_nodes(tree: exp.Expr) -> Iterator[exp.Expr]:
    yield from tree.find_all(exp.CurrentTimestamp)


def _tree_rules(tree: exp.Expr, emit: Emit) -> None:
    for node in _now_nodes(tree):
        if not _now_allowed(node):
            emit(
                "now-outside-filter",
                "NOW() outside WHERE/HAVING/ON/FROM is not a temporal "
                "filter and is rejected in streaming queries",
            )
    for node in tree.find_all(exp.Or):
        left = next(_now_nodes(node.this), None)
        right = next(_now_nodes(node.expression), None)
        if left is not None and right is not None:
            emit(
                "or-temporal-filters",
                "two temporal filters joined by OR are rejected; "
                "split into a UNION or separate views",
            )
    for node in tree.find_all(exp.Round):
        if node.args.get("decimals") is not None and not _is_numeric(node.this):
            emit(
                "round-double",
                f"{node.sql('risingwave')}: cast the first argument ::NUMERIC "
                "(ROUND(double, n) does not exist), then back to DOUBLE PRECISION",
            )
    for node in tree.find_all(exp.Window):
        if isinstance(node.this, exp.Expr) and not node.args.get("partition_by"):
            emit("window-partition", f"{node.this.sql('risingwave')} OVER (...) needs PARTITION BY")


def lint_statement(
    script: str,
    stmt: Statement,
    values: Mapping[str, str] | None = None,
    state: StateRules | None = None,
) -> list[Finding]:
    """Findings for one statement; ``values`` fill ``${var}`` before parsing; ``state``
    knows the objects created by the statements before it (bounded-state rules)."""
    found: list[Finding] = []

    def emit(rule: str, message: str) -> None:
        finding = Finding(script, stmt.number, stmt.line, rule, message)
        if finding not in found:
            found.append(finding)

    _text_rules(stmt.text, emit)
    # Deployment values (bootstrap servers) have no default on purpose: a placeholder will do
    # for parsing; ``up`` is what insists on every value.
    known = dict(values or {})
    for name in variables_in(stmt.text):
        known.setdefault(name, placeholders("${x}"))
    text = substitute(stmt, known, script)
    try:
        tree = parse(text)
    except SqlParseError as exc:
        emit("parse", str(exc))
        return found
    _tree_rules(tree, emit)
    if state is not None:
        state.check(text, emit)
        state.learn(text)
    return found


def lint_text(
    script: str,
    text: str,
    values: Mapping[str, str] | None = None,
    state: StateRules | None = None,
) -> list[Finding]:
    """Findings of every statement of ``text``; objects it creates are known to the next."""
    state = StateRules() if state is None else state
    return [f for s in split_statements(text) for f in lint_statement(script, s, values, state)]


def lint_dir(path: str | Path, vars: Mapping[str, str] | None = None) -> list[Finding]:
    """Lint every ``.sql`` file of ``path`` (Flyway names required), in name order."""
    root = Path(path)
    if not root.is_dir():
        raise NamingError(f"{root}: directory not found")
    values = load_vars(root, vars)
    found: list[Finding] = []
    state = StateRules()
    for file in sorted(root.glob("*.sql"), key=_apply_order):
        try:
            parse_name(file.name)
        except NamingError as exc:
            found.append(Finding(file.name, 0, 1, "naming", str(exc)))
        found += lint_text(file.name, file.read_text(encoding="utf-8-sig"), values, state)
    return found


def _apply_order(path: Path) -> tuple[int, tuple[int, ...], str]:
    """V files by version, then R files by name (as ``up`` applies them), then the rest:
    the bounded-state rules must see an object's definition before its readers."""
    try:
        _, version, _ = parse_name(path.name)
    except NamingError:
        return (2, (), path.name)
    if version is not None:
        return (0, tuple(int(p) for p in version.split(".")), path.name)
    return (1, (), path.name)
