"""compose.yaml and its neighbours, loaded once for the deployment tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def load_compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def command_flags(command: list[str]) -> dict[str, str]:
    """``["run", "--a", "1", "--b", "2"]`` -> ``{"--a": "1", "--b": "2"}`` (value flags only)."""
    out: dict[str, str] = {}
    for i, arg in enumerate(command):
        if arg.startswith("--") and i + 1 < len(command):
            out[arg] = command[i + 1]
    return out


def volume_mounts(service: dict[str, Any]) -> dict[str, str]:
    """Short-syntax volumes ``source:target[:mode]`` as ``{source: target}``."""
    return {v.split(":")[0]: v.split(":")[1] for v in service.get("volumes", [])}


def container_ports(service: dict[str, Any]) -> set[int]:
    return {int(str(p).rsplit(":", 1)[-1].split("/")[0]) for p in service.get("ports", [])}
