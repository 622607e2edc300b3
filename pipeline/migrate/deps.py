"""Which objects each statement creates and references, and the order to rebuild them in.

RisingWave cannot replace a view in place, so changing a repeatable file means dropping its
objects and everything built on them (dependents first), then creating them again (the files
that define them, dependencies first). This module derives that graph from the SQL itself
with sqlglot, so nobody maintains a dependency list by hand.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlglot import exp

from pipeline.migrate.errors import DependencyError
from pipeline.migrate.files import placeholders
from pipeline.migrate.sqltext import SqlParseError, mask, parse

#: kinds a rebuild can drop, as SQL keywords (also the ``kind`` handed to ``compile_drop``)
MATERIALIZED_VIEW = "MATERIALIZED VIEW"
_WINDOW_FUNCS = {"TUMBLE", "HOP"}
_CREATE_RE = re.compile(
    r"^\s*CREATE\s+(?:OR\s+REPLACE\s+)?(?P<kind>MATERIALIZED\s+VIEW|VIEW|SINK|SOURCE|TABLE|INDEX)"
    r"\s+(?:IF\s+NOT\s+EXISTS\s+)?(?P<name>[\w.\"]+)",
    re.IGNORECASE,
)
_REF_RE = re.compile(r"\b(?:FROM|JOIN|ON)\s+(?P<name>[A-Za-z_][\w.]*)", re.IGNORECASE)


@dataclass(frozen=True)
class DbObject:
    """A named object a statement creates."""

    kind: str
    name: str


@dataclass
class StatementDeps:
    """What one statement creates and which object names it reads."""

    created: list[DbObject] = field(default_factory=list)
    references: set[str] = field(default_factory=set)


def _kind(tree: exp.Create) -> str:
    kind = str(tree.args.get("kind") or "").upper()
    props = tree.args.get("properties")
    if (
        kind == "VIEW"
        and props
        and any(isinstance(p, exp.MaterializedProperty) for p in props.expressions)
    ):
        return MATERIALIZED_VIEW
    return kind


def _created_name(tree: exp.Create) -> str:
    target = tree.this
    if isinstance(target, exp.Schema):
        target = target.this
    return str(target.name).lower()


def analyze(text: str) -> StatementDeps:
    """Objects created and referenced by one statement (RisingWave SQL).

    ``${var}`` placeholders may still be in ``text``: a neutral value stands in for them, as
    variables never name objects here (names are fixed; only hosts and tunables vary).
    """
    text = placeholders(text)
    try:
        tree = parse(text)
    except SqlParseError:
        return _analyze_text(text)
    deps = StatementDeps()
    own: str | None = None
    if isinstance(tree, exp.Create):
        if _kind(tree) == "INDEX":
            index = tree.this
            deps.created.append(DbObject("INDEX", index.name.lower()))
            table = index.args.get("table")
            if table is not None:
                deps.references.add(table.name.lower())
            return deps
        own = _created_name(tree)
        deps.created.append(DbObject(_kind(tree), own))
    ctes = {cte.alias.lower() for cte in tree.find_all(exp.CTE)}
    for table in tree.find_all(exp.Table):
        name = table.name.lower()
        if name and name != own and name not in ctes:
            deps.references.add(name)
    for func in tree.find_all(exp.Anonymous):
        if str(func.this).upper() in _WINDOW_FUNCS and func.expressions:
            first = func.expressions[0]
            if isinstance(first, exp.Column | exp.Table) and first.name.lower() not in ctes:
                deps.references.add(first.name.lower())
    return deps


def _analyze_text(text: str) -> StatementDeps:
    """Best effort for statements sqlglot cannot parse (validation reports those anyway)."""
    masked = mask(text)
    deps = StatementDeps()
    own = None
    if m := _CREATE_RE.match(masked):
        own = m.group("name").strip('"').split(".")[-1].lower()
        deps.created.append(DbObject(" ".join(m.group("kind").upper().split()), own))
    for m in _REF_RE.finditer(masked):
        name = m.group("name").split(".")[-1].lower()
        if name != own:
            deps.references.add(name)
    return deps


@dataclass
class Definition:
    """Where an object is defined: its kind, the script, the script's type and its reads."""

    obj: DbObject
    script: str
    file_type: str
    references: set[str]


def definitions(files: Iterable[tuple[str, str, list[str]]]) -> dict[str, Definition]:
    """``(script, type, statement texts)`` per file -> object name -> where it is defined."""
    out: dict[str, Definition] = {}
    for script, file_type, texts in files:
        for text in texts:
            deps = analyze(text)
            for obj in deps.created:
                out[obj.name] = Definition(obj, script, file_type, set(deps.references))
    return out


def dependents(defs: dict[str, Definition], names: Iterable[str]) -> set[str]:
    """Every object that reads any of ``names``, directly or through other objects."""
    readers: dict[str, set[str]] = {}
    for name, d in defs.items():
        for ref in d.references:
            readers.setdefault(ref, set()).add(name)
    seen: set[str] = set()
    todo = list(names)
    while todo:
        for reader in readers.get(todo.pop(), ()):
            if reader not in seen:
                seen.add(reader)
                todo.append(reader)
    return seen


def creation_order(defs: dict[str, Definition], names: Iterable[str]) -> list[str]:
    """``names`` sorted so every object comes after the objects it reads (ties by name).

    Drop in the reverse of this order. A cycle raises :class:`DependencyError`.
    """
    wanted = set(names)
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            raise DependencyError(f"dependency cycle: {' -> '.join([*path, name])}")
        state[name] = 1
        d = defs.get(name)
        for ref in sorted(d.references if d else ()):
            if ref in wanted:
                visit(ref, [*path, name])
        state[name] = 2
        order.append(name)

    for name in sorted(wanted):
        visit(name, [])
    return order
