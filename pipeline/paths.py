"""Where the SQL folders are: the project's ``migrations/`` and ``sql/``.

From a checkout (or the Docker image's ``/app``) they are in the working directory; from an
editable install, next to the packages. ``GRIDCTL_MIGRATIONS`` / ``GRIDCTL_SQL`` override.
"""

from __future__ import annotations

import os
from pathlib import Path


def project_dir(name: str) -> Path:
    env = os.environ.get(f"GRIDCTL_{name.upper()}")
    if env:
        return Path(env)
    here = Path.cwd() / name
    if here.is_dir():
        return here
    return Path(__file__).resolve().parent.parent / name
