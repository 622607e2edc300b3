"""Fixtures of the reliability drills: ``gridctl run`` in a child process, torn down always.

Every test here is marked ``drill`` (the default run deselects them, see pyproject.toml);
run them with ``.venv/bin/pytest -m drill tests/drills -s`` to see what each printed.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bench._common import GridctlProcess
from pipeline.contracts import MeterValue, decode


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/drills is a drill, marked or not."""
    for item in items:
        if "tests/drills/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.drill)


@pytest.fixture
async def gridctl(tmp_path: Path) -> AsyncIterator[Callable[..., GridctlProcess]]:
    """A factory of ``GridctlProcess`` objects that are all stopped after the test."""
    made: list[GridctlProcess] = []

    def make(**kwargs: Any) -> GridctlProcess:
        gw = GridctlProcess(tmp_path / f"gridctl-{len(made)}", **kwargs)
        made.append(gw)
        return gw

    try:
        yield make
    finally:
        for gw in made:
            await gw.stop()


def wal_meter_readings(bus_dir: Path, prefix: str) -> Counter[tuple[str, Any]]:
    """(station_id, event_ts) of every ``ocpp.meter_values`` record in a LocalBus WAL.

    Read straight from ``bus.log`` (what a restarted LocalBus would load), so retention
    limits of the in-memory log cannot hide a record.
    """
    found: Counter[tuple[str, Any]] = Counter()
    with open(bus_dir / "bus.log", "rb") as f:
        for line in f:
            if not line.endswith(b"\n"):
                break
            entry = json.loads(line)
            if entry["t"] != "ocpp.meter_values" or entry["v"] is None:
                continue
            if not str(entry["k"]).startswith(prefix):
                continue
            mv = decode(MeterValue, base64.b64decode(entry["v"]))
            # a reading retried beyond the gateway's clock-skew bound carries the received
            # time as event_ts and its own in charger_ts: identify it by its own
            found[(mv.station_id, mv.charger_ts or mv.event_ts)] += 1
    return found
