"""TEST PEER: a tiny central system (1.6 and 2.0.1) on the ocpp library, for simulator tests.

Not the gateway: it accepts everyone, records the Authorization header each charger sent
and every sample of Power.Active.Import / Power.Offered it reports, and lets a test send
SetChargingProfile, ClearChargingProfile and GetCompositeSchedule to a connected charger.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from dataclasses import dataclass, field
from typing import Any

from ocpp.routing import on
from ocpp.v16 import ChargePoint as Cp16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as res16
from ocpp.v16.enums import Action as A16
from ocpp.v201 import ChargePoint as Cp201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as res201
from ocpp.v201.enums import Action as A201
from websockets.asyncio.server import ServerConnection, serve


@dataclass
class Sample:
    at: float
    power_w: float | None
    offered_w: float | None
    action: str


@dataclass
class Station:
    station_id: str
    version: str
    authorization: str | None
    cp: Any = None
    samples: list[Sample] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)


def _values16(meter_value: list[dict[str, Any]]) -> dict[str, float]:
    out = {}
    for mv in meter_value:
        for sv in mv["sampled_value"]:
            out[sv.get("measurand", "Energy.Active.Import.Register")] = float(sv["value"])
    return out


def _values201(meter_value: list[dict[str, Any]] | None) -> dict[str, float]:
    out = {}
    for mv in meter_value or []:
        for sv in mv["sampled_value"]:
            mult = (sv.get("unit_of_measure") or {}).get("multiplier", 0)
            out[sv.get("measurand", "Energy.Active.Import.Register")] = sv["value"] * 10**mult
    return out


class _Peer16(Cp16):
    station: Station
    owner: TestCentralSystem
    tx_ids = itertools.count(1)

    def _note(self, action: str) -> None:
        self.station.actions.append(action)

    @on(A16.boot_notification)
    def boot(self, **_: Any) -> res16.BootNotification:
        if self.owner.pending_boots > 0:
            self.owner.pending_boots -= 1
            self._note("BootNotification:Pending")
            return res16.BootNotification(current_time=_now(), interval=1, status="Pending")
        self._note("BootNotification")
        return res16.BootNotification(current_time=_now(), interval=300, status="Accepted")

    @on(A16.heartbeat)
    def heartbeat(self, **_: Any) -> res16.Heartbeat:
        self._note("Heartbeat")
        return res16.Heartbeat(current_time=_now())

    @on(A16.status_notification)
    def status(self, status: str, **_: Any) -> res16.StatusNotification:
        self._note(f"StatusNotification:{status}")
        return res16.StatusNotification()

    @on(A16.authorize)
    def authorize(self, **_: Any) -> res16.Authorize:
        self._note("Authorize")
        return res16.Authorize(id_tag_info={"status": "Accepted"})

    @on(A16.start_transaction)
    def start_tx(self, **_: Any) -> res16.StartTransaction:
        self._note("StartTransaction")
        return res16.StartTransaction(
            transaction_id=next(self.tx_ids), id_tag_info={"status": "Accepted"}
        )

    @on(A16.stop_transaction)
    def stop_tx(self, **_: Any) -> res16.StopTransaction:
        self._note("StopTransaction")
        return res16.StopTransaction()

    @on(A16.meter_values)
    def meter(self, meter_value: list[dict[str, Any]], **_: Any) -> res16.MeterValues:
        v = _values16(meter_value)
        self.station.samples.append(
            Sample(time.time(), v.get("Power.Active.Import"), v.get("Power.Offered"), "MV")
        )
        return res16.MeterValues()


class _Peer201(Cp201):
    station: Station
    owner: TestCentralSystem

    def _note(self, action: str) -> None:
        self.station.actions.append(action)

    @on(A201.boot_notification)
    def boot(self, **_: Any) -> res201.BootNotification:
        if self.owner.pending_boots > 0:
            self.owner.pending_boots -= 1
            self._note("BootNotification:Pending")
            return res201.BootNotification(current_time=_now(), interval=1, status="Pending")
        self._note("BootNotification")
        return res201.BootNotification(current_time=_now(), interval=300, status="Accepted")

    @on(A201.heartbeat)
    def heartbeat(self, **_: Any) -> res201.Heartbeat:
        self._note("Heartbeat")
        return res201.Heartbeat(current_time=_now())

    @on(A201.status_notification)
    def status(self, connector_status: str, **_: Any) -> res201.StatusNotification:
        self._note(f"StatusNotification:{connector_status}")
        return res201.StatusNotification()

    @on(A201.authorize)
    def authorize(self, **_: Any) -> res201.Authorize:
        self._note("Authorize")
        return res201.Authorize(id_token_info={"status": "Accepted"})

    @on(A201.transaction_event)
    def tx_event(
        self, event_type: str, meter_value: list[dict[str, Any]] | None = None, **_: Any
    ) -> res201.TransactionEvent:
        self._note(f"TransactionEvent:{event_type}")
        v = _values201(meter_value)
        if "Power.Active.Import" in v:
            self.station.samples.append(
                Sample(time.time(), v["Power.Active.Import"], v.get("Power.Offered"), "TE")
            )
        return res201.TransactionEvent()

    @on(A201.meter_values)
    def meter(self, meter_value: list[dict[str, Any]], **_: Any) -> res201.MeterValues:
        v = _values201(meter_value)
        self.station.samples.append(
            Sample(time.time(), v.get("Power.Active.Import"), v.get("Power.Offered"), "MV")
        )
        return res201.MeterValues()


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"


class TestCentralSystem:
    """TEST PEER. ``async with TestCentralSystem() as cs:`` then ``cs.url``."""

    __test__ = False  # not a pytest test class

    def __init__(self, *, pending_boots: int = 0) -> None:
        #: answer this many BootNotifications with Pending (interval 1 s) before accepting
        self.pending_boots = pending_boots
        self.stations: dict[str, Station] = {}
        self._server: Any = None
        self.url = ""

    async def __aenter__(self) -> TestCentralSystem:
        self._server = await serve(
            self._handle,
            "127.0.0.1",
            0,
            subprotocols=["ocpp2.0.1", "ocpp1.6"],  # type: ignore[list-item]
        )
        port = next(iter(self._server.sockets)).getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}/ocpp"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        with contextlib.suppress(Exception):
            await self._server.wait_closed()

    async def _handle(self, ws: ServerConnection) -> None:
        sid = ws.request.path.rsplit("/", 1)[-1]  # type: ignore[union-attr]
        auth = ws.request.headers.get("Authorization")  # type: ignore[union-attr]
        version = "2.0.1" if ws.subprotocol == "ocpp2.0.1" else "1.6"
        station = Station(sid, version, auth)
        cls = _Peer201 if version == "2.0.1" else _Peer16
        cp = cls(sid, ws)
        cp.station = station
        cp.owner = self
        station.cp = cp
        self.stations[sid] = station
        with contextlib.suppress(Exception):
            await cp.start()

    # -- test helpers --------------------------------------------------------------------
    async def station(self, sid: str, timeout: float = 20.0) -> Station:
        async with asyncio.timeout(timeout):
            while sid not in self.stations or "BootNotification" not in self.stations[sid].actions:
                await asyncio.sleep(0.02)
        return self.stations[sid]

    async def wait_sample(
        self, sid: str, predicate: Any, *, after: float = 0.0, timeout: float = 20.0
    ) -> Sample:
        """The first sample at or after ``after`` (POSIX s) for which ``predicate`` holds."""
        async with asyncio.timeout(timeout):
            while True:
                for s in self.stations.get(sid, Station(sid, "", None)).samples:
                    if s.at >= after and s.power_w is not None and predicate(s):
                        return s
                await asyncio.sleep(0.02)

    async def set_max_profile(
        self,
        sid: str,
        limit: float,
        *,
        unit: str = "W",
        valid_to: float | None = None,
        purpose: str = "max",
        stack_level: int = 1,
        profile_id: int = 100,
    ) -> str:
        """SetChargingProfile station-wide (``max``) or as TxDefault (``default``)."""
        st = self.stations[sid]
        start = _iso(time.time() - 60)
        if st.version == "1.6":
            profile: dict[str, Any] = {
                "charging_profile_id": profile_id,
                "stack_level": stack_level,
                "charging_profile_purpose": "ChargePointMaxProfile"
                if purpose == "max"
                else "TxDefaultProfile",
                "charging_profile_kind": "Absolute",
                "charging_schedule": {
                    "charging_rate_unit": unit,
                    "start_schedule": start,
                    "charging_schedule_period": [{"start_period": 0, "limit": limit}],
                },
            }
            if valid_to is not None:
                profile["valid_to"] = _iso(valid_to)
            result = await st.cp.call(
                call16.SetChargingProfile(connector_id=0, cs_charging_profiles=profile)
            )
        else:
            profile = {
                "id": profile_id,
                "stack_level": stack_level,
                "charging_profile_purpose": "ChargingStationMaxProfile"
                if purpose == "max"
                else "TxDefaultProfile",
                "charging_profile_kind": "Absolute",
                "charging_schedule": [
                    {
                        "id": 1,
                        "charging_rate_unit": unit,
                        "start_schedule": start,
                        "charging_schedule_period": [{"start_period": 0, "limit": limit}],
                    }
                ],
            }
            if valid_to is not None:
                profile["valid_to"] = _iso(valid_to)
            result = await st.cp.call(
                call201.SetChargingProfile(evse_id=0, charging_profile=profile)
            )
        return str(result.status)

    async def clear(self, sid: str, profile_id: int = 100) -> str:
        st = self.stations[sid]
        if st.version == "1.6":
            result = await st.cp.call(call16.ClearChargingProfile(id=profile_id))
        else:
            result = await st.cp.call(call201.ClearChargingProfile(charging_profile_id=profile_id))
        return str(result.status)

    async def composite(self, sid: str, duration: int = 600) -> Any:
        st = self.stations[sid]
        if st.version == "1.6":
            return await st.cp.call(call16.GetCompositeSchedule(connector_id=0, duration=duration))
        return await st.cp.call(call201.GetCompositeSchedule(duration=duration, evse_id=0))

    async def set_interval(self, sid: str, seconds: str) -> tuple[str, str | None]:
        """Set the sample interval; (status, value read back afterwards)."""
        st = self.stations[sid]
        if st.version == "1.6":
            res = await st.cp.call(
                call16.ChangeConfiguration(key="MeterValueSampleInterval", value=seconds)
            )
            back = await st.cp.call(call16.GetConfiguration(key=["MeterValueSampleInterval"]))
            keys = back.configuration_key or []
            return str(res.status), keys[0]["value"] if keys else None
        var = {"component": {"name": "SampledDataCtrlr"}, "variable": {"name": "TxUpdatedInterval"}}
        res = await st.cp.call(
            call201.SetVariables(set_variable_data=[{**var, "attribute_value": seconds}])
        )
        back = await st.cp.call(call201.GetVariables(get_variable_data=[var]))
        return (
            str(res.set_variable_result[0]["attribute_status"]),
            back.get_variable_result[0].get("attribute_value"),
        )
