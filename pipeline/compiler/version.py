"""The compiler's version, folded into the checksum of every R file on the embedded target.

``gridctl migrate up`` reapplies an R file when its checksum changes. The compiled views
depend on the compiler as much as on the SQL, so a database migrated by an older gridctl
would keep the old compiled views. The version is a hash of this package's own source and
of the sqlglot version it parses with, not a constant to bump: a constant that someone
forgets to bump leaves wrong views in place silently, while a hash at worst rebuilds the R
files once for a change that did not alter the output (a rebuild is what ``up`` does for
any R edit anyway).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import sqlglot

__all__ = ["COMPILER_VERSION", "source_hash"]


def source_hash(package: Path, sqlglot_version: str) -> str:
    """16 hex digits over the ``*.py`` files of ``package`` (line endings do not count)."""
    h = hashlib.sha256(f"sqlglot {sqlglot_version}\n".encode())
    for path in sorted(package.glob("*.py")):
        h.update(path.name.encode() + b"\0" + path.read_bytes().replace(b"\r\n", b"\n") + b"\0")
    return h.hexdigest()[:16]


#: changes whenever the compiler's source or sqlglot's version does
COMPILER_VERSION = source_hash(Path(__file__).parent, sqlglot.__version__)
