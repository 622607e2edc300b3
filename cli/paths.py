"""Where the SQL folders are (see :mod:`pipeline.paths`; the bridge reads ``sql/`` too)."""

from pipeline.paths import project_dir

__all__ = ["project_dir"]
