"""Shared fixtures: real PostgreSQL, a real Kafka-protocol broker, RisingWave when reachable."""

from tests.fixtures.kafka import any_bus, kafka, own_tansu  # noqa: F401
from tests.fixtures.postgres import postgres, postgres_server  # noqa: F401
from tests.fixtures.risingwave import risingwave  # noqa: F401


def pytest_configure(config: object) -> None:
    """Give each session its own temporary root.

    pytest's default ``/tmp/pytest-of-<user>/pytest-N`` keeps only the last three sessions
    and deletes older ones when a new session starts, so two suites running at once (CI
    next to a developer, or parallel jobs) would delete each other's data directories.
    """
    import os
    import tempfile

    option = config.option  # type: ignore[attr-defined]
    if getattr(option, "basetemp", None) is None:
        option.basetemp = tempfile.mkdtemp(prefix="gridctl-pytest-")
        config._gridctl_basetemp = option.basetemp  # type: ignore[attr-defined]
    # As root, the embedded PostgreSQL runs as another user, which cannot reach pytest's
    # 0700 directories: their clusters are relocated (pipeline.embedded_pg) into a runtime
    # dir of this session, traversable but not listable, removed with the session.
    runtime = tempfile.mkdtemp(prefix="gridctl-pytest-pg-")
    os.chmod(runtime, 0o711)
    os.environ["GRIDCTL_PG_RUNTIME_DIR"] = runtime
    config._gridctl_pg_runtime = runtime  # type: ignore[attr-defined]


def pytest_unconfigure(config: object) -> None:
    import shutil

    for attr in ("_gridctl_basetemp", "_gridctl_pg_runtime"):
        created = getattr(config, attr, None)
        if created:
            shutil.rmtree(created, ignore_errors=True)
