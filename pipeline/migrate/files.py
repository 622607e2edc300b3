"""Migration files: discovery, Flyway naming, statement splitting, ``${var}``, checksum.

Pure functions over text and paths; nothing here talks to a database, so a bad file is found
before any connection is opened.

Naming (Flyway): ``V<version>__<description>.sql`` (version digits separated by ``.`` or ``_``;
applied once, in version order) and ``R__<description>.sql`` (repeatable, applied after all
versioned files, in name order, again whenever the checksum changes). Any other ``.sql`` file is
an error, so a typo cannot silently skip a migration. Other files (``vars.defaults``) are ignored.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

from pipeline.migrate.errors import NamingError, VariableError

VERSIONED = "V"
REPEATABLE = "R"
DEFAULTS_FILE = "vars.defaults"

_V_NAME = re.compile(r"^V(?P<ver>\d+(?:[._]\d+)*)__(?P<desc>[^\s].*)\.sql$")
_R_NAME = re.compile(r"^R__(?P<desc>[^\s].*)\.sql$")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_.]*)\}")
_DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")


def checksum(text: str) -> int:
    """CRC32 over the lines of ``text``, as Flyway does: line endings and a BOM do not count.

    So a file checked out with CRLF on one machine and LF on another is the same migration.
    """
    crc = 0
    for line in text.removeprefix("\ufeff").splitlines():
        crc = zlib.crc32(line.encode("utf-8"), crc)
    return crc


@dataclass(frozen=True)
class Statement:
    """One statement of a file: 1-based ``number``, text without the ``;``, starting ``line``."""

    number: int
    text: str
    line: int

    @property
    def first_line(self) -> str:
        """The first line of the statement, for error messages."""
        return self.text.splitlines()[0].strip() if self.text else ""

    @property
    def checksum(self) -> int:
        return checksum(self.text)


def split_statements(text: str) -> list[Statement]:
    """Split SQL text at top-level ``;``, respecting quotes, comments and dollar-quoting.

    Single-quoted strings (``''`` and ``E'\\''`` escapes), double-quoted identifiers, ``--`` and
    nested ``/* */`` comments and ``$tag$...$tag$`` bodies may all contain ``;``. Comments
    before a statement are dropped; a piece holding only comments is not a statement.
    """
    text = text.removeprefix("\ufeff")
    out: list[Statement] = []
    n = len(text)
    i = 0
    line = 1
    start: int | None = None  # offset of the first significant character of the statement
    start_line = 1

    def begin() -> None:
        nonlocal start, start_line
        if start is None:
            start, start_line = i, line

    while i < n:
        c = text[i]
        nxt = text[i + 1] if i + 1 < n else ""
        if c == "\n":
            line += 1
            i += 1
        elif c.isspace():
            i += 1
        elif c == "-" and nxt == "-":
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif c == "/" and nxt == "*":
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    line += text[i] == "\n"
                    i += 1
        elif c == ";":
            if start is not None:
                out.append(Statement(len(out) + 1, text[start:i].rstrip(), start_line))
            start = None
            i += 1
        elif c in "'\"":
            begin()
            escapes = (
                c == "'"
                and i > 0
                and text[i - 1] in "eE"
                and (i < 2 or not (text[i - 2].isalnum() or text[i - 2] == "_"))
            )
            i += 1
            while i < n:
                ch = text[i]
                if escapes and ch == "\\":
                    line += text[i + 1 : i + 2] == "\n"
                    i += 2
                    continue
                if ch == c:
                    if text[i + 1 : i + 2] == c:  # doubled quote inside
                        i += 2
                        continue
                    i += 1
                    break
                line += ch == "\n"
                i += 1
        elif c == "$" and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            begin()
            m = _DOLLAR_TAG.match(text, i)
            if m is None:
                i += 1
                continue
            tag = m.group(0)
            end = text.find(tag, m.end())
            stop = n if end < 0 else end + len(tag)
            line += text.count("\n", i, stop)
            i = stop
        else:
            begin()
            i += 1
    if start is not None and text[start:].strip():
        out.append(Statement(len(out) + 1, text[start:].rstrip(), start_line))
    return out


def parse_var_assignments(pairs: list[str] | None) -> dict[str, str]:
    """``["k=v", ...]`` (the CLI's repeated ``--var``) -> dict; a pair without ``=`` is an error."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise NamingError(f"--var {pair!r}: expected name=value")
        out[name.strip()] = value
    return out


def load_vars(directory: Path, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """Defaults from ``<directory>/vars.defaults`` (``name=value`` lines, ``#`` comments),
    overlaid with ``overrides`` (``--var``)."""
    values: dict[str, str] = {}
    path = Path(directory) / DEFAULTS_FILE
    if path.exists():
        for number, raw in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
            text = raw.strip()
            if not text or text.startswith("#"):
                continue
            name, sep, value = text.partition("=")
            if not sep:
                raise NamingError(f"{path.name}:{number}: expected name=value, got {raw!r}")
            values[name.strip()] = value.strip()
    values.update(overrides or {})
    return values


def variables_in(text: str) -> list[str]:
    """Names of the ``${var}`` placeholders in ``text``, in order of first use."""
    return list(dict.fromkeys(_VAR.findall(text)))


def placeholders(text: str) -> str:
    """``text`` with every ``${var}`` replaced by ``0``: parseable wherever a value may stand."""
    return _VAR.sub("0", text)


def substitute(stmt: Statement, values: Mapping[str, str], script: str) -> str:
    """Replace every ``${name}`` in the statement; a missing one raises :class:`VariableError`
    naming the file, line and variable."""

    def repl(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in values:
            raise VariableError(script, name, stmt.line + stmt.text.count("\n", 0, m.start()))
        return values[name]

    return _VAR.sub(repl, stmt.text)


@dataclass(frozen=True)
class MigrationFile:
    """One migration file as found on disk."""

    path: Path
    type: str  # VERSIONED or REPEATABLE
    version: str | None
    description: str
    text: str = field(repr=False)
    #: folded into an R file's checksum: the embedded target's compiler version, so an
    #: upgrade that changes the compiled output rebuilds R files (V files never get one)
    salt: str = field(default="", repr=False)

    @property
    def script(self) -> str:
        return self.path.name

    @property
    def version_key(self) -> tuple[int, ...]:
        return tuple(int(p) for p in re.split(r"[._]", self.version)) if self.version else ()

    @cached_property
    def checksum(self) -> int:
        if not self.salt:
            return checksum(self.text)
        return zlib.crc32(f"\ncompiler {self.salt}".encode(), checksum(self.text))

    @cached_property
    def statements(self) -> list[Statement]:
        return split_statements(self.text)


def salted(files: list[MigrationFile], salt: str) -> list[MigrationFile]:
    """``files`` with ``salt`` in the checksum of the R files; V files are left as they are
    (an applied V file is never re-run, whatever compiles it)."""
    if not salt:
        return files
    return [replace(f, salt=salt) if f.type == REPEATABLE else f for f in files]


def parse_name(name: str) -> tuple[str, str | None, str]:
    """File name -> (type, version, description); :class:`NamingError` if it is neither form."""
    if m := _V_NAME.match(name):
        version = m.group("ver").replace("_", ".")
        return VERSIONED, version, m.group("desc").replace("_", " ")
    if m := _R_NAME.match(name):
        return REPEATABLE, None, m.group("desc").replace("_", " ")
    raise NamingError(
        f"{name}: not a migration name (expected V<version>__<description>.sql "
        "or R__<description>.sql)"
    )


def discover(directory: str | Path) -> list[MigrationFile]:
    """All migrations of ``directory``: versioned in version order, then repeatable by name."""
    root = Path(directory)
    if not root.is_dir():
        raise NamingError(f"{root}: migrations directory not found")
    files: list[MigrationFile] = []
    seen: dict[tuple[int, ...], str] = {}
    for path in sorted(root.glob("*.sql")):
        kind, version, desc = parse_name(path.name)
        raw = path.read_bytes().decode("utf-8")
        mf = MigrationFile(path, kind, version, desc, raw)
        if kind == VERSIONED:
            if mf.version_key in seen:
                other = seen[mf.version_key]
                raise NamingError(f"{path.name}: version {version} also used by {other}")
            seen[mf.version_key] = path.name
        files.append(mf)
    versioned = sorted((f for f in files if f.type == VERSIONED), key=lambda f: f.version_key)
    repeatable = sorted((f for f in files if f.type == REPEATABLE), key=lambda f: f.script)
    return versioned + repeatable
