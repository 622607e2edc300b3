"""Test peers: real OCPP chargers on the ocpp library, over real websockets.

Not a mock: these are the library's own ChargePoint classes, the same code a charger
simulator (and many real chargers' test rigs) run. They record the profile calls they get
and answer with a configurable status per charging-profile purpose.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import websockets
from ocpp.routing import on
from ocpp.v16 import ChargePoint as CP16
from ocpp.v16 import call_result as result16
from ocpp.v16.enums import Action as Action16
from ocpp.v201 import ChargePoint as CP201
from ocpp.v201 import call_result as result201
from ocpp.v201.enums import Action as Action201

from pipeline.bus import Bus, Record


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


class _Recorder:
    def _init_recorder(self) -> None:
        self.profiles: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.clears: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        #: purpose -> status to answer (default Accepted)
        self.answers: dict[str, str] = {}


class Charger16(_Recorder, CP16):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._init_recorder()

    @on(Action16.set_charging_profile)
    async def on_set_profile(self, connector_id: int, cs_charging_profiles: dict, **_: Any):
        self.profiles.put_nowait({"connector_id": connector_id, **cs_charging_profiles})
        purpose = cs_charging_profiles["charging_profile_purpose"]
        return result16.SetChargingProfile(status=self.answers.get(purpose, "Accepted"))

    @on(Action16.clear_charging_profile)
    async def on_clear(self, **kwargs: Any):
        self.clears.put_nowait(kwargs)
        return result16.ClearChargingProfile(status="Accepted")


class Charger201(_Recorder, CP201):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._init_recorder()

    @on(Action201.set_charging_profile)
    async def on_set_profile(self, evse_id: int, charging_profile: dict, **_: Any):
        self.profiles.put_nowait({"evse_id": evse_id, **charging_profile})
        purpose = charging_profile["charging_profile_purpose"]
        return result201.SetChargingProfile(status=self.answers.get(purpose, "Accepted"))

    @on(Action201.clear_charging_profile)
    async def on_clear(self, **kwargs: Any):
        self.clears.put_nowait(kwargs)
        return result201.ClearChargingProfile(status="Accepted")


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@contextlib.asynccontextmanager
async def charger(
    port: int,
    station_id: str,
    version: str = "1.6",
    *,
    password: str | None = None,
    cls: type | None = None,
    response_timeout: float = 10,
) -> AsyncIterator[Any]:
    """A connected, running charger; closed on exit."""
    headers = basic(station_id, password) if password is not None else None
    ws = await websockets.connect(
        f"ws://127.0.0.1:{port}/ocpp/{station_id}",
        subprotocols=[f"ocpp{version}"],  # type: ignore[list-item]
        additional_headers=headers,
        open_timeout=10,
    )
    cls = cls or (Charger16 if version == "1.6" else Charger201)
    cp = cls(station_id, ws, response_timeout=response_timeout)
    task = asyncio.create_task(cp.start())
    try:
        yield cp
    finally:
        task.cancel()
        await ws.close()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


async def wait_records(
    bus: Bus, topic: str, *, count: int = 1, key: str | None = None, timeout: float = 10.0
) -> list[Record]:
    """Read ``topic`` from the beginning until ``count`` records (of ``key``) arrived."""
    sub = bus.subscribe([topic], group=None, from_beginning=True)
    out: list[Record] = []
    try:
        async with asyncio.timeout(timeout):
            while len(out) < count:
                for record in await sub.batch(500, timeout=0.2):
                    if key is None or record.key == key:
                        out.append(record)
    finally:
        await sub.close()
    return out
