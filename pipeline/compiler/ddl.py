"""Reading RisingWave DDL (SOURCE, TABLE, SINK, INDEX) into plain facts.

sqlglot turns ``ON CONFLICT ... WITH VERSION COLUMN``, ``APPEND ONLY`` and ``INCLUDE KEY``
into opaque commands, so the clauses of a ``CREATE SOURCE/TABLE/SINK`` are read here with a
small hand parser instead: the column list by balanced parentheses, the clauses by their
keywords. Pure text in, dataclasses out; no database.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pipeline.compiler.errors import CompileError, first_line

_IDENT = r'(?:"[^"]+"|[A-Za-z_][A-Za-z0-9_]*)(?:\.(?:"[^"]+"|[A-Za-z_][A-Za-z0-9_]*))?'

#: RisingWave type name -> PostgreSQL type name (everything else passes unchanged).
_TYPES = {
    "VARCHAR": "TEXT",
    "STRING": "TEXT",
    "CHARACTER VARYING": "TEXT",
    "INT": "INTEGER",
    "INT4": "INTEGER",
    "INT8": "BIGINT",
    "INT2": "SMALLINT",
    "FLOAT8": "DOUBLE PRECISION",
    "FLOAT": "DOUBLE PRECISION",
    "DOUBLE": "DOUBLE PRECISION",
    "FLOAT4": "REAL",
    "DECIMAL": "NUMERIC",
    "BOOL": "BOOLEAN",
    "TIMESTAMP WITH TIME ZONE": "TIMESTAMPTZ",
    "JSON": "JSONB",
}
_KNOWN_TYPES = {
    "TEXT", "INTEGER", "BIGINT", "SMALLINT", "DOUBLE PRECISION", "REAL", "NUMERIC",
    "BOOLEAN", "TIMESTAMPTZ", "TIMESTAMP", "DATE", "TIME", "INTERVAL", "BYTEA", "JSONB",
}  # fmt: skip


def strip_comments(sql: str) -> tuple[str, list[str]]:
    """``sql`` without ``--`` comments (outside quotes), and the comments' texts."""
    out: list[str] = []
    comments: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c in "'\"":
            j = i + 1
            while j < n:
                if sql[j] == c:
                    if sql[j + 1 : j + 2] == c:
                        j += 2
                        continue
                    break
                j += 1
            out.append(sql[i : j + 1])
            i = j + 1
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            end = n if end < 0 else end
            comments.append(sql[i + 2 : end].strip())
            i = end
        else:
            out.append(c)
            i += 1
    return "".join(out), comments


def balanced(text: str, start: int) -> int:
    """Index just after the parenthesis closing the one at ``text[start]``."""
    depth = 0
    i = start
    quote = ""
    while i < len(text):
        c = text[i]
        if quote:
            if c == quote:
                quote = ""
        elif c in "'\"":
            quote = c
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise ValueError("unbalanced parentheses")


def split_top(text: str, sep: str = ",") -> list[str]:
    """Split at ``sep`` outside parentheses and quotes."""
    parts: list[str] = []
    depth = 0
    quote = ""
    cur: list[str] = []
    for c in text:
        if quote:
            if c == quote:
                quote = ""
        elif c in "'\"":
            quote = c
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == sep and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
            continue
        cur.append(c)
    if "".join(cur).strip():
        parts.append("".join(cur).strip())
    return parts


def unquote(name: str) -> str:
    name = name.strip()
    return name[1:-1] if name.startswith('"') and name.endswith('"') else name.lower()


def pg_type(rw_type: str) -> str:
    t = " ".join(rw_type.upper().split())
    base = re.sub(r"\(.*\)$", "", t).strip()
    mapped = _TYPES.get(base, base)
    if mapped not in _KNOWN_TYPES and not mapped.endswith("[]"):
        raise ValueError(f"unsupported column type {rw_type!r}")
    return mapped if base == t or mapped != base else t


@dataclass
class Column:
    name: str
    type: str


@dataclass
class Relation:
    """A SOURCE or TABLE: columns, key, how its topic feeds it."""

    kind: str  # SOURCE | TABLE
    name: str
    columns: list[Column]
    primary_key: list[str] = field(default_factory=list)
    watermark_column: str | None = None
    watermark_delay: str | None = None
    append_only: bool = False
    version_column: str | None = None
    key_column: str | None = None
    options: dict[str, str] = field(default_factory=dict)
    format: str | None = None
    indexes: list[list[str]] = field(default_factory=list)
    if_not_exists: bool = False
    #: ``ON CONFLICT DO NOTHING``: the first row per key wins (a value frozen once);
    #: otherwise a later row overwrites (RisingWave's default, ``OVERWRITE``)
    keep_first: bool = False


@dataclass
class Sink:
    name: str
    view: str | None
    query: str | None
    options: dict[str, str]
    format: str
    format_options: dict[str, str]
    #: ``KEY ENCODE TEXT``: the Kafka key is the bare primary-key value (the embedded
    #: engine always writes it so; RisingWave's default is a JSON object of the key)
    key_encode: str | None = None


_KEY_ENCODE = re.compile(r"\bKEY\s+ENCODE\s+(?P<enc>\w+)\s*$", re.I)

_REL_HEAD = re.compile(
    rf"^\s*CREATE\s+(?P<kind>SOURCE|TABLE)\s+(?P<ine>IF\s+NOT\s+EXISTS\s+)?(?P<name>{_IDENT})\s*",
    re.I,
)
_SINK_HEAD = re.compile(
    rf"^\s*CREATE\s+SINK\s+(?:IF\s+NOT\s+EXISTS\s+)?(?P<name>{_IDENT})\s+"
    rf"(?:FROM\s+(?P<view>{_IDENT})\s*|AS\s+)",
    re.I,
)
_HINT = re.compile(r"^gridctl:\s*index\s*\((?P<cols>[^)]*)\)\s*$", re.I)


def parse_options(text: str) -> dict[str, str]:
    """``key = 'value', k2 = v2`` -> dict (keys lower-cased, quotes removed)."""
    out: dict[str, str] = {}
    for part in split_top(text):
        key, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"option {part!r} is not key = value")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == "'":
            value = value[1:-1].replace("''", "'")
        out[key.strip().lower()] = value
    return out


def _tail_clauses(rest: str) -> tuple[dict[str, str], str | None, dict[str, str], str]:
    """Read ``WITH (...)`` and ``FORMAT x ENCODE y [(...)]`` off ``rest``; return the rest."""
    options: dict[str, str] = {}
    fmt: str | None = None
    fmt_options: dict[str, str] = {}
    m = re.search(r"\bWITH\s*\(", rest, re.I)
    if m:
        end = balanced(rest, m.end() - 1)
        options = parse_options(rest[m.end() : end - 1])
        rest = rest[: m.start()] + " " + rest[end:]
    m = re.search(r"\bFORMAT\s+(\w+)\s+ENCODE\s+(\w+)\s*", rest, re.I)
    if m:
        fmt = m.group(1).upper()
        after = rest[m.end() :]
        if after.startswith("("):
            end = balanced(after, 0)
            fmt_options = parse_options(after[1 : end - 1])
            after = after[end:]
        rest = rest[: m.start()] + " " + after
    return options, fmt, fmt_options, rest


def parse_relation(sql: str) -> Relation:
    """Parse ``CREATE SOURCE|TABLE name (...) [clauses]``."""
    text, comments = strip_comments(sql)
    head = _REL_HEAD.match(text)
    if head is None:
        raise CompileError(first_line(sql), "expected CREATE SOURCE|TABLE name (...)")
    try:
        return _relation(text, comments, head)
    except ValueError as exc:
        raise CompileError(first_line(sql), str(exc)) from exc


def _relation(text: str, comments: list[str], head: re.Match[str]) -> Relation:
    rel = Relation(
        kind=head.group("kind").upper(),
        name=unquote(head.group("name")),
        columns=[],
        if_not_exists=bool(head.group("ine")),
    )
    pos = head.end()
    if pos >= len(text) or text[pos] != "(":
        raise ValueError("a column list is required (schema inference is not compiled)")
    end = balanced(text, pos)
    for item in split_top(text[pos + 1 : end - 1]):
        words = item.split()
        upper = item.upper()
        if upper.startswith("WATERMARK"):
            m = re.match(
                rf"WATERMARK\s+FOR\s+(?P<col>{_IDENT})\s+AS\s+(?P<expr>.+)$", item, re.I | re.S
            )
            if m is None:
                raise ValueError(f"cannot read watermark {item!r}")
            rel.watermark_column = unquote(m.group("col"))
            delay = re.search(r"-\s*INTERVAL\s+'([^']+)'", m.group("expr"), re.I)
            rel.watermark_delay = delay.group(1) if delay else "0 seconds"
        elif re.match(r"PRIMARY\s+KEY\s*\(", item, re.I):
            inner = item[item.index("(") + 1 : item.rindex(")")]
            rel.primary_key = [unquote(c) for c in split_top(inner)]
        else:
            m = re.match(rf"(?P<name>{_IDENT})\s+(?P<type>.+)$", item, re.S)
            if m is None or len(words) < 2:
                raise ValueError(f"cannot read column {item!r}")
            ctype = m.group("type")
            if re.search(r"\bPRIMARY\s+KEY\b", ctype, re.I):
                rel.primary_key = [unquote(m.group("name"))]
                ctype = re.sub(r"\bPRIMARY\s+KEY\b", "", ctype, flags=re.I)
            ctype = re.sub(r"\bNOT\s+NULL\b", "", ctype, flags=re.I).strip()
            if re.search(r"\b(DEFAULT|AS)\b", ctype, re.I):
                raise ValueError(f"column {item!r}: DEFAULT and generated columns are not compiled")
            rel.columns.append(Column(unquote(m.group("name")), pg_type(ctype)))
    rest = text[end:]
    if re.search(r"\bAPPEND\s+ONLY\b", rest, re.I):
        rel.append_only = True
        rest = re.sub(r"\bAPPEND\s+ONLY\b", " ", rest, flags=re.I)
    m = re.search(rf"\bWITH\s+VERSION\s+COLUMN\s*\(\s*(?P<col>{_IDENT})\s*\)", rest, re.I)
    if m:
        rel.version_column = unquote(m.group("col"))
        rest = rest[: m.start()] + " " + rest[m.end() :]
    m = re.search(
        r"\bON\s+CONFLICT\s+(OVERWRITE|IGNORE|DO\s+NOTHING|DO\s+UPDATE\s+IF\s+NOT\s+NULL)",
        rest,
        re.I,
    )
    if m:
        action = " ".join(m.group(1).upper().split())
        if action not in ("OVERWRITE", "IGNORE", "DO NOTHING"):
            raise ValueError(f"ON CONFLICT {action} is not compiled (OVERWRITE, DO NOTHING)")
        rel.keep_first = action != "OVERWRITE"
        rest = rest[: m.start()] + " " + rest[m.end() :]
    m = re.search(rf"\bINCLUDE\s+KEY\s+AS\s+(?P<col>{_IDENT})", rest, re.I)
    if m:
        rel.key_column = unquote(m.group("col"))
        rel.columns.append(Column(rel.key_column, "BYTEA"))
        rest = rest[: m.start()] + " " + rest[m.end() :]
    if re.search(r"\bINCLUDE\b", rest, re.I):
        raise ValueError("only INCLUDE KEY AS <column> is compiled")
    rel.options, rel.format, _, rest = _tail_clauses(rest)
    if rest.strip():
        raise ValueError(f"unexpected clause {rest.strip()[:60]!r}")
    names = {c.name for c in rel.columns}
    for col in [*rel.primary_key, rel.version_column, rel.watermark_column]:
        if col and col not in names:
            raise ValueError(f"column {col!r} is not declared")
    if rel.keep_first and rel.version_column:
        raise ValueError("ON CONFLICT DO NOTHING takes no version column")
    if rel.kind == "SOURCE" and rel.primary_key:
        raise ValueError("a SOURCE has no primary key; use a TABLE")
    if rel.format == "UPSERT" and not rel.primary_key:
        raise ValueError("FORMAT UPSERT needs a PRIMARY KEY")
    for comment in comments:
        hint = _HINT.match(comment)
        if hint:
            cols = [unquote(c) for c in split_top(hint.group("cols"))]
            unknown = [c for c in cols if c not in names]
            if unknown:
                raise ValueError(f"index hint names unknown columns {unknown}")
            rel.indexes.append(cols)
    return rel


def parse_sink(sql: str) -> Sink:
    """Parse ``CREATE SINK name FROM view|AS query WITH (...) FORMAT ... ENCODE ...``."""
    text, _ = strip_comments(sql)
    head = _SINK_HEAD.match(text)
    if head is None:
        raise CompileError(first_line(sql), "expected CREATE SINK name FROM view | AS query")
    rest = text[head.end() :]
    query = None
    try:
        if head.group("view") is None:
            m = re.search(r"\bWITH\s*\(", rest, re.I)
            if m is None:
                raise ValueError("a sink needs WITH (...)")
            query, rest = rest[: m.start()], rest[m.start() :]
        key_encode = None
        tail = _KEY_ENCODE.search(rest.rstrip().rstrip(";"))
        if tail is not None:
            key_encode = tail.group("enc").upper()
            if key_encode != "TEXT":
                raise ValueError(f"KEY ENCODE {key_encode}: only TEXT exists")
            rest = rest[: tail.start()]
        options, fmt, fmt_options, rest = _tail_clauses(rest)
    except ValueError as exc:
        raise CompileError(first_line(sql), str(exc)) from exc
    if rest.strip():
        raise CompileError(first_line(sql), f"unexpected clause {rest.strip()[:60]!r}")
    if key_encode and len([k for k in options.get("primary_key", "").split(",") if k]) != 1:
        raise CompileError(first_line(sql), "KEY ENCODE TEXT needs exactly one primary_key column")
    return Sink(
        key_encode=key_encode,
        name=unquote(head.group("name")),
        view=unquote(head.group("view")) if head.group("view") else None,
        query=query,
        options=options,
        format=(fmt or "PLAIN"),
        format_options=fmt_options,
    )
