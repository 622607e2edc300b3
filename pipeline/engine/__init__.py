"""The embedded engine: the compiled pipeline on PostgreSQL, fed from the bus.

``Engine(dsn, bus, tick=1.0, clock=None, retention=None)``;
``await engine.start()`` / ``await engine.stop()``; ``await engine.run_tick()`` for one
ingest + sink evaluation; ``VirtualClock`` for replay and tests;
``apply_migrations(dsn)`` compiles and applies ``migrations/`` without history.
"""

from pipeline.engine.apply import apply_migrations, compiled_statements
from pipeline.engine.clock import VirtualClock
from pipeline.engine.errors import CatalogError, EngineError, ReplayError
from pipeline.engine.rows import Emit
from pipeline.engine.runtime import GROUP, Engine

__all__ = [
    "GROUP",
    "CatalogError",
    "Emit",
    "Engine",
    "EngineError",
    "ReplayError",
    "VirtualClock",
    "apply_migrations",
    "compiled_statements",
]
