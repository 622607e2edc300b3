"""Reading RisingWave SQL with sqlglot: opaque clauses off, masking, one-statement parse.

sqlglot 30 turns a statement it cannot fully parse into an opaque ``Command``; for RisingWave
that happens on clauses it does not know (``EMIT ON WINDOW CLOSE``, ``ON CONFLICT ... WITH
VERSION COLUMN``, ``APPEND ONLY``, ``WITH TTL``). Those clauses change nothing about which
objects a statement names, so they are taken off the text before parsing; a CREATE that still
falls back to a Command is a parse failure. Only the analysis uses the stripped text: the
runner always executes the original.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

DIALECT = "risingwave"

_OPAQUE = re.compile(
    r"\bEMIT\s+ON\s+WINDOW\s+CLOSE\b"
    r"|\bON\s+CONFLICT\s+(?:OVERWRITE|IGNORE|DO\s+NOTHING|DO\s+UPDATE\s+(?:FULL|IF\s+NOT\s+NULL))"
    r"(?:\s+WITH\s+VERSION\s+COLUMN\s*\([^)]*\))?"
    r"|\bWITH\s+TTL\b"
    r"|\bAPPEND\s+ONLY\b",
    re.IGNORECASE,
)
_QUERY_START = re.compile(r"\bAS\s*(?=\(?\s*(?:SELECT|WITH)\b)", re.IGNORECASE)


class SqlParseError(Exception):
    """A statement that sqlglot's RisingWave dialect cannot parse; ``str`` says why and
    ``line`` (1-based, within the statement) says where, when sqlglot knows."""

    def __init__(self, message: str, line: int | None = None):
        super().__init__(message)
        self.line = line


def _from_sqlglot(exc: ParseError | TokenError) -> SqlParseError:
    errors = getattr(exc, "errors", None) or []
    if errors:
        first = errors[0]
        desc = str(first.get("description") or "").split(". Line ")[0]
        line, col = first.get("line"), first.get("col")
        desc = re.sub(r"<Token token_type: TokenType\.\w+, text: ([^,]*),.*?>", r"'\1'", desc)
        return SqlParseError(f"{desc} (statement line {line}, column {col})", line)
    return SqlParseError(_first_line(str(exc)))


def mask(text: str) -> str:
    """``text`` with the insides of string literals and comments blanked (same length).

    Regex rules look at the mask, so a ``;`` or keyword inside a string or comment never
    matches, while offsets still point into the original.
    """
    out = list(text)
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("--", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
            out[i:end] = " " * (end - i)
            i = end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            out[i:end] = [ch if ch == "\n" else " " for ch in text[i:end]]
            i = end
        elif c in "'\"":
            j = i + 1
            while j < n:
                if text[j] == c:
                    if text[j + 1 : j + 2] == c:
                        j += 2
                        continue
                    break
                j += 1
            out[i + 1 : j] = [ch if ch == "\n" else " " for ch in text[i + 1 : j]]
            i = j + 1
        else:
            i += 1
    return "".join(out)


def strip_opaque(text: str) -> str:
    """Take the clauses sqlglot cannot parse off ``text`` (outside strings and comments)."""
    masked = mask(text)
    pieces: list[str] = []
    last = 0
    for m in _OPAQUE.finditer(masked):
        pieces.append(text[last : m.start()])
        last = m.end()
    pieces.append(text[last:])
    return "".join(pieces)


@contextmanager
def _quiet_sqlglot() -> Iterator[None]:
    """sqlglot logs a warning on every Command fallback; we report those ourselves."""
    logger = logging.getLogger("sqlglot")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def parse(text: str) -> exp.Expr:
    """Parse one statement (opaque clauses taken off) or raise :class:`SqlParseError`."""
    stripped = strip_opaque(text)
    try:
        with _quiet_sqlglot():
            trees = [t for t in sqlglot.parse(stripped, read=DIALECT) if t is not None]
    except (ParseError, TokenError) as exc:
        raise _from_sqlglot(exc) from exc
    if len(trees) != 1:
        raise SqlParseError(f"expected one statement, found {len(trees)}")
    tree = trees[0]
    if isinstance(tree, exp.Command) and str(tree.this).upper() in ("CREATE", "SELECT", "WITH"):
        raise SqlParseError(_why_opaque(stripped))
    return tree


def _first_line(message: str) -> str:
    return message.splitlines()[0] if message else message


def _why_opaque(stripped: str) -> str:
    """Find out why a CREATE fell back to a Command: parse its query alone for the position."""
    m = _QUERY_START.search(mask(stripped))
    if m:
        query = stripped[m.end() :]
        try:
            with _quiet_sqlglot():
                sqlglot.parse_one(query, read=DIALECT)
        except (ParseError, TokenError) as exc:
            return f"sqlglot cannot parse the query after AS: {_from_sqlglot(exc)}"
    return "sqlglot (risingwave dialect) cannot parse this statement (falls back to a Command)"


def object_name(table: exp.Expr) -> str:
    """Lower-case, unqualified name of a table-like node (schema prefixes dropped)."""
    return table.name.lower()
