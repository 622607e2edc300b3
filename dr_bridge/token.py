"""The API token of an embedded run: generated once, kept in ``<data-dir>/api-token``.

On ``gridctl run`` without configured tokens, the first start writes a random token to
the data directory (mode 0600) and prints it once; later starts reuse it, and the CLI
reads it from there when neither ``--token`` nor ``GRIDCTL_API_TOKEN`` is given.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

TOKEN_FILE = "api-token"


def token_path(data_dir: str | Path) -> Path:
    return Path(data_dir) / TOKEN_FILE


def read_token(data_dir: str | Path) -> str | None:
    """The stored token, or None when there is none (or it cannot be read)."""
    try:
        token = token_path(data_dir).read_text().strip()
    except OSError:
        return None
    return token or None


def ensure_token(data_dir: str | Path) -> tuple[str, bool]:
    """``(token, created)``: the stored token, or a new one written with mode 0600."""
    existing = read_token(data_dir)
    if existing is not None:
        return existing, False
    path = token_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return token, True
