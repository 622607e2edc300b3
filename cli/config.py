"""``gridctl.toml``: defaults for any option of any command, below flags and environment.

Precedence is flags > ``GRIDCTL_*`` environment > file > built-in defaults. That is
click's own order for a context's ``default_map``, so the file becomes one: keys at the
top apply to every command that has such an option (``data_dir``), a table names a
command (``[run]``, ``[dr.send]``) and its keys apply to it and to its subcommands.
Keys are option names with underscores (``api_port``, ``log_format``). A key no command
of that table knows is refused, naming the file, the table and the key.

The file is ``--config PATH`` (given before the command), else ``GRIDCTL_CONFIG``, else
``./gridctl.toml`` when it exists.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

import click

DEFAULT_FILE = Path("gridctl.toml")


class ConfigError(ValueError):
    """The config file is unreadable or names an option no command has."""


def split_config_flag(argv: list[str]) -> tuple[Path | None, list[str]]:
    """``--config PATH`` / ``--config=PATH`` taken out of ``argv`` (it precedes the command)."""
    rest: list[str] = []
    path: Path | None = None
    words = iter(argv)
    for word in words:
        if word == "--config":
            value = next(words, None)
            if value is None:
                raise ConfigError("--config needs a file name")
            path = Path(value)
        elif word.startswith("--config="):
            path = Path(word.partition("=")[2])
        else:
            rest.append(word)
    return path, rest


def config_path(flag: Path | None) -> Path | None:
    if flag is not None:
        return flag
    env = os.environ.get("GRIDCTL_CONFIG")
    if env:
        return Path(env)
    return DEFAULT_FILE if DEFAULT_FILE.is_file() else None


def load(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None


def default_map(root: click.Command, data: dict[str, Any], path: Path) -> dict[str, Any]:
    """Click's nested ``default_map`` for the root group from the file's ``data``.

    Only commands that are loaded are checked (``gridctl`` imports the named group only);
    a key in the table of a loaded command that it does not have is a ConfigError.
    """

    def build(
        cmd: click.Command, table: dict[str, Any], inherited: dict[str, Any], where: str
    ) -> dict[str, Any]:
        scalars = {k: v for k, v in table.items() if not isinstance(v, dict)}
        values = {**inherited, **scalars}
        params = {p.name for p in cmd.params if p.name}
        subcommands: dict[str, click.Command] = getattr(cmd, "commands", {})
        if where and params and not subcommands:
            for key in scalars:
                if key not in params:
                    flag = "--" + key.replace("_", "-")
                    raise ConfigError(
                        f"{path}: [{where}] {key}: `gridctl {where.replace('.', ' ')}` "
                        f"has no option {flag}"
                    )
        out: dict[str, Any] = {k: v for k, v in values.items() if k in params}
        for name, sub in subcommands.items():
            section = table.get(name)
            sub_where = f"{where}.{name}" if where else name
            out[name] = build(sub, section if isinstance(section, dict) else {}, values, sub_where)
        return out

    tables = {k: v for k, v in data.items() if isinstance(v, dict)}
    everywhere = {k: v for k, v in data.items() if not isinstance(v, dict)}
    return build(root, tables, everywhere, "")
