"""Options several commands share, spelled once (one flag name per concept)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

DataDirOption = Annotated[
    Path,
    typer.Option("--data-dir", envvar="GRIDCTL_DATA_DIR", help="Data directory of `gridctl run`."),
]
DEFAULT_DATA_DIR = Path(".gridctl")
