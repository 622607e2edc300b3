"""``--var NAME=VALUE`` for migration placeholders, checked against the names that exist.

A typo (``--var freshnes_seconds=60``) used to be accepted and silently change nothing;
the known names are those in ``vars.defaults`` and the ``${name}`` placeholders the
migration files use.
"""

from __future__ import annotations

from pathlib import Path

import typer

from pipeline.migrate.files import load_vars, variables_in


def known_vars(directory: Path) -> list[str]:
    names = set(load_vars(directory))
    for path in directory.glob("*.sql"):
        names.update(variables_in(path.read_text(encoding="utf-8-sig")))
    return sorted(names)


def parse_vars(
    pairs: list[str] | None, directory: Path | None, option: str = "--var"
) -> dict[str, str]:
    """``["k=v", ...]`` to a dict; a malformed pair or an unknown name is a usage error
    naming the flag (and, for an unknown name, every known one)."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"expected name=value, got {pair!r}", param_hint=option)
        out[key.strip()] = value
    if directory is not None and out:
        known = known_vars(directory)
        for key in out:
            if key not in known:
                raise typer.BadParameter(
                    f"unknown variable {key!r}; known: {', '.join(known)}", param_hint=option
                )
    return out
