"""Shared pieces of the migrate tests (imported by them; holds no tests itself).

``STAND_IN_COMPILER`` is the one test double here: it stands in for ``pipeline.compiler``
while that module does not exist yet (it maps CREATE MATERIALIZED VIEW to CREATE VIEW and
leaves tables as they are). As soon as ``pipeline.compiler`` is importable, ``compiler()``
returns the real one and every test runs against it.
"""

from __future__ import annotations

import importlib
import re
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

FIXTURE = Path(__file__).parent / "migrations_fixture"


def _stand_in_compile(sql: str) -> str:
    return re.sub(r"^\s*CREATE\s+MATERIALIZED\s+VIEW", "CREATE VIEW", sql, flags=re.I)


def _stand_in_drop(kind: str, name: str) -> list[str]:
    if kind in ("MATERIALIZED VIEW", "VIEW"):
        return [f"DROP VIEW IF EXISTS {name}"]
    if kind in ("TABLE", "SOURCE"):
        return [f"DROP TABLE IF EXISTS {name}"]
    return []


STAND_IN_COMPILER = SimpleNamespace(
    BOOTSTRAP_SQL="",
    compile_statement=_stand_in_compile,
    compile_drop=_stand_in_drop,
)


def compiler() -> Any:
    """The real ``pipeline.compiler`` when it exists, else the stand-in."""
    try:
        return importlib.import_module("pipeline.compiler")
    except ModuleNotFoundError:
        return STAND_IN_COMPILER


def copy_fixture(tmp_path: Path, name: str = "migrations") -> Path:
    """A private, editable copy of the fixture migrations."""
    target = tmp_path / name
    shutil.copytree(FIXTURE, target)
    return target
