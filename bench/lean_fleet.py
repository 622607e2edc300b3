"""A lean fleet of OCPP chargers for the whole-system benchmarks: OCPP-J text, no library.

Why not :mod:`simulator`: its chargers run on the ocpp library (call machinery, dataclasses,
~600 us of CPU per message), so at 5,000-10,000 chargers on a 2-core machine the load
generator, not gridctl, would be what a benchmark measures. Here every charger is one
:class:`asyncio.Protocol` (no task, no stream, no per-message object): websocket frames are
parsed from a buffer (client frames masked with the all-zero key, legal and free),
messages are JSON text built from small dicts, and answers to the gateway's calls are the
minimal *valid* payloads (the gateway validates every frame against the OCPP schemas).

Each charger has a car plugged in from the start and charges at a seeded share of its
hardware's power until a profile limits it:

- 1.6: BootNotification (Pending: retried after the interval given), StatusNotification
  Charging, StartTransaction, MeterValues every ``meter_interval`` with its transactionId;
- 2.0.1: BootNotification, StatusNotification Occupied, TransactionEvent Started, then
  TransactionEvent Updated (MeterValuePeriodic) every ``meter_interval``.

Calls from the gateway: SetChargingProfile installs the first period's limit (``A`` per
phase or ``W``; the benchmark's events start now and outlast the run) and the charger
reports its new draw at once, as a real charger does on a rate change (2.0.1 trigger
``ChargingRateChanged``); ClearChargingProfile lifts it; GetConfiguration / GetVariables
answer the smart-charging keys; ChangeConfiguration, SetVariables, TriggerMessage and
GetCompositeSchedule get valid answers; anything else a ``NotImplemented`` CallError.

:class:`LeanFleet` counts what a benchmark needs: messages each way, CallErrors received
per action and code (a CallError to MeterValues or TransactionEvent is a refused reading),
calls unanswered, and the CPU this process spent (``cpu_window``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from simulator.physics import StationSpec

#: CALL unique ids: one counter for the process is unique per connection too
_IDS = itertools.count(1)
_READINGS = frozenset({"MeterValues", "TransactionEvent"})


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def frame(opcode: int, data: bytes) -> bytes:
    """One final client frame, masked with the all-zero key (RFC 6455 allows any key)."""
    n = len(data)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 0xFE)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0xFF)) + n.to_bytes(8, "big")
    return head + b"\0\0\0\0" + data


class LeanCharger(asyncio.Protocol):
    """One charger on one connection; state that outlives it lives on the fleet."""

    def __init__(self, fleet: LeanFleet, spec: StationSpec, offer_w: float) -> None:
        self.fleet, self.spec, self.offer_w = fleet, spec, offer_w
        self.v201 = spec.ocpp_version == "2.0.1"
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.upgraded = False
        self.pending: dict[str, tuple[str, Callable[[dict[str, Any] | None], None]]] = {}
        self.limit_w: float | None = None
        self.energy_wh = 0.0
        self.last_t = time.time()
        self.tx: int | str | None = None
        self.seq = 0
        self.timer: asyncio.TimerHandle | None = None
        old = fleet.chargers.get(spec.station_id)
        if old is not None:  # a reconnect: the session and the limit go on
            self.tx, self.seq, self.energy_wh = old.tx, old.seq, old.energy_wh
            self.limit_w = old.limit_w
        fleet.chargers[spec.station_id] = self

    # -- connection --------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sid, f = self.spec.station_id, self.fleet
        token = base64.b64encode(f"{sid}:{f.password}".encode()).decode()
        key = base64.b64encode(os.urandom(16)).decode()
        sub = "ocpp2.0.1" if self.v201 else "ocpp1.6"
        transport.write(
            (f"GET {f.path}/{sid} HTTP/1.1\r\nHost: {f.host}:{f.port}\r\n"
             "Upgrade: websocket\r\nConnection: Upgrade\r\n"
             f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
             f"Sec-WebSocket-Protocol: {sub}\r\nAuthorization: Basic {token}\r\n\r\n").encode()
        )  # fmt: skip

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.fleet.lost(self)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buf[:end])
            del buf[: end + 4]
            status = head.split(b"\r\n", 1)[0]
            if b" 101 " not in status:
                self.fleet.stats["refused " + status.decode(errors="replace")[9:12]] += 1
                assert self.transport is not None
                self.transport.close()
                return
            self.upgraded = True
            self.boot()
        while len(buf) >= 2:
            b0, b1 = buf[0], buf[1]
            n, at = b1 & 0x7F, 2
            if n == 126:
                if len(buf) < 4:
                    return
                n, at = int.from_bytes(buf[2:4], "big"), 4
            elif n == 127:
                if len(buf) < 10:
                    return
                n, at = int.from_bytes(buf[2:10], "big"), 10
            if len(buf) < at + n:
                return
            payload = bytes(buf[at : at + n])
            del buf[: at + n]
            opcode = b0 & 0x0F
            if opcode == 1:
                self.on_text(payload)
            elif opcode == 9:
                self.write(10, payload)
            elif opcode == 8 and self.transport is not None:
                self.transport.close()
                return

    def write(self, opcode: int, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(frame(opcode, data))

    # -- OCPP-J ------------------------------------------------------------------------
    def call(
        self, action: str, payload: dict[str, Any], then: Callable[[dict[str, Any] | None], None]
    ) -> None:
        uid = str(next(_IDS))
        self.pending[uid] = (action, then)
        self.fleet.sent += 1
        self.write(1, f'[2,"{uid}","{action}",{json.dumps(payload)}]'.encode())

    def on_text(self, data: bytes) -> None:
        f = self.fleet
        f.received += 1
        msg = json.loads(data)
        kind = msg[0]
        if kind == 2:
            action = msg[2]
            f.calls[action] += 1
            handler = (ANSWERS_201 if self.v201 else ANSWERS_16).get(action)
            if handler is None:
                self.send_text([4, msg[1], "NotImplemented", f"{action} not simulated", {}])
                return
            answer, after = handler(self, msg[3])
            self.send_text([3, msg[1], answer])
            if after is not None:
                after()
            return
        entry = self.pending.pop(msg[1], None)
        if entry is None:
            f.stats["answer to an unknown call"] += 1
            return
        action, then = entry
        if kind == 3:
            then(msg[2])
        else:
            f.call_errors[(action, msg[2])] += 1
            then(None)

    def send_text(self, message: list[Any]) -> None:
        self.fleet.sent += 1
        self.write(1, json.dumps(message).encode())

    # -- the charger's own messages ------------------------------------------------------
    def boot(self) -> None:
        if self.v201:
            body: dict[str, Any] = {
                "chargingStation": {"vendorName": "gridctl", "model": "lean"},
                "reason": "PowerUp",
            }
        else:
            body = {"chargePointVendor": "gridctl", "chargePointModel": "lean"}
        self.call("BootNotification", body, self.booted)

    def booted(self, answer: dict[str, Any] | None) -> None:
        loop = asyncio.get_running_loop()
        if answer is None or answer.get("status") != "Accepted":
            retry = float((answer or {}).get("interval") or 0) or 5.0
            self.timer = loop.call_later(retry, self.boot)
            return
        if self.v201:
            status = {"timestamp": _now_iso(), "connectorStatus": "Occupied", "evseId": 1,
                      "connectorId": 1}  # fmt: skip
            self.call("StatusNotification", status, self.start_tx)
        else:
            status = {"connectorId": 1, "errorCode": "NoError", "status": "Charging",
                      "timestamp": _now_iso()}  # fmt: skip
            self.call("StatusNotification", status, self.start_tx)

    def start_tx(self, _: dict[str, Any] | None) -> None:
        if self.tx is not None:  # a reconnect: the session goes on
            self.started({})
            return
        if self.v201:
            self.tx = f"{self.spec.station_id}-tx"
            self.seq = 0
            self.call("TransactionEvent", self.event("Started", "Authorized"), self.started)
        else:
            body = {"connectorId": 1, "idTag": "LEAN0001", "meterStart": 0,
                    "timestamp": _now_iso()}  # fmt: skip
            self.call("StartTransaction", body, self.started)

    def started(self, answer: dict[str, Any] | None) -> None:
        if answer is None:  # a CallError: a transaction message is sent again (OCPP 4.7)
            if self.v201:
                self.tx = None
            self.timer = asyncio.get_running_loop().call_later(
                self.fleet.rng.uniform(1.0, 3.0), self.start_tx, None
            )
            return
        if not self.v201 and "transactionId" in answer:
            self.tx = int(answer["transactionId"])
        self.fleet.booted(self)
        interval = self.fleet.meter_interval
        # the first periodic sample at a random point of the interval: a fleet booted
        # within a few seconds must not report in lockstep
        delay = self.fleet.rng.random() * interval
        self.timer = asyncio.get_running_loop().call_later(delay, self.periodic)

    def periodic(self) -> None:
        self.timer = asyncio.get_running_loop().call_later(self.fleet.meter_interval, self.periodic)
        self.report(changed=False)

    @property
    def watts(self) -> float:
        return self.offer_w if self.limit_w is None else min(self.offer_w, self.limit_w)

    def _sampled(self, context: str) -> list[dict[str, Any]]:
        now = time.time()
        self.energy_wh += self.watts * (now - self.last_t) / 3600.0
        self.last_t = now
        if self.v201:
            return [
                {"value": round(self.watts, 1), "context": context,
                 "measurand": "Power.Active.Import", "unitOfMeasure": {"unit": "W"}},
                {"value": round(self.energy_wh, 1), "context": context,
                 "measurand": "Energy.Active.Import.Register", "unitOfMeasure": {"unit": "Wh"}},
            ]  # fmt: skip
        return [
            {"value": f"{self.watts:.1f}", "context": context,
             "measurand": "Power.Active.Import", "unit": "W"},
            {"value": f"{self.energy_wh:.1f}", "context": context,
             "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
        ]  # fmt: skip

    def event(self, event_type: str, trigger: str) -> dict[str, Any]:
        context = "Transaction.Begin" if event_type == "Started" else (
            "Sample.Periodic" if trigger == "MeterValuePeriodic" else "Trigger"
        )  # fmt: skip
        body: dict[str, Any] = {
            "eventType": event_type,
            "timestamp": _now_iso(),
            "triggerReason": trigger,
            "seqNo": self.seq,
            "transactionInfo": {"transactionId": self.tx, "chargingState": "Charging"},
            "meterValue": [{"timestamp": _now_iso(), "sampledValue": self._sampled(context)}],
        }
        self.seq += 1
        if event_type == "Started":
            body["evse"] = {"id": 1, "connectorId": 1}
            body["idToken"] = {"idToken": "LEAN0001", "type": "ISO14443"}
        return body

    def report(self, changed: bool) -> None:
        """A reading now: periodic, or the new draw after a limit changed."""
        if self.v201:
            trigger = "ChargingRateChanged" if changed else "MeterValuePeriodic"
            self.call("TransactionEvent", self.event("Updated", trigger), _ignore)
            return
        context = "Trigger" if changed else "Sample.Periodic"
        body = {
            "connectorId": 1,
            "transactionId": self.tx,
            "meterValue": [{"timestamp": _now_iso(), "sampledValue": self._sampled(context)}],
        }
        self.call("MeterValues", body, _ignore)

    # -- the gateway's calls ---------------------------------------------------------------
    def set_limit(self, schedule: dict[str, Any]) -> None:
        self.fleet.profile(self.spec.station_id)
        self._sampled("Trigger")  # energy up to now at the old draw
        period = schedule["chargingSchedulePeriod"][0]
        limit = float(period["limit"])
        if schedule["chargingRateUnit"] == "A":
            limit *= int(period.get("numberPhases", 3)) * self.spec.voltage_v
        self.limit_w = limit


def _ignore(_: dict[str, Any] | None) -> None:
    return None


Answer = tuple[dict[str, Any], Callable[[], None] | None]


def _set_16(c: LeanCharger, p: dict[str, Any]) -> Answer:
    c.set_limit(p["csChargingProfiles"]["chargingSchedule"])
    return {"status": "Accepted"}, lambda: c.report(changed=True)


def _set_201(c: LeanCharger, p: dict[str, Any]) -> Answer:
    schedules = p["chargingProfile"]["chargingSchedule"]
    c.set_limit(schedules[0] if isinstance(schedules, list) else schedules)
    return {"status": "Accepted"}, lambda: c.report(changed=True)


def _clear(c: LeanCharger, p: dict[str, Any]) -> Answer:
    had, c.limit_w = c.limit_w is not None, None
    return {"status": "Accepted" if had else "Unknown"}, lambda: c.report(changed=True)


_CONFIG_16 = {
    "ChargingScheduleAllowedChargingRateUnit": "Current,Power",
    "ChargeProfileMaxStackLevel": "10",
    "MeterValueSampleInterval": "10",
}


def _get_configuration(c: LeanCharger, p: dict[str, Any]) -> Answer:
    wanted = p.get("key") or list(_CONFIG_16)
    answer: dict[str, Any] = {
        "configurationKey": [
            {"key": k, "readonly": True, "value": _CONFIG_16[k]} for k in wanted if k in _CONFIG_16
        ]
    }
    unknown = [k for k in wanted if k not in _CONFIG_16]
    if unknown:
        answer["unknownKey"] = unknown
    return answer, None


_VARIABLES_201 = {
    ("SmartChargingCtrlr", "RateUnit"): "A,W",
    ("SmartChargingCtrlr", "ProfileStackLevel"): "10",
    ("SmartChargingCtrlr", "Enabled"): "true",
}


def _get_variables(c: LeanCharger, p: dict[str, Any]) -> Answer:
    out = []
    for item in p["getVariableData"]:
        value = _VARIABLES_201.get((item["component"]["name"], item["variable"]["name"]))
        entry: dict[str, Any] = {
            "attributeStatus": "Accepted" if value is not None else "UnknownVariable",
            "component": item["component"],
            "variable": item["variable"],
        }
        if value is not None:
            entry["attributeValue"] = value
        out.append(entry)
    return {"getVariableResult": out}, None


def _set_variables(c: LeanCharger, p: dict[str, Any]) -> Answer:
    out = [
        {"attributeStatus": "Rejected", "component": i["component"], "variable": i["variable"]}
        for i in p["setVariableData"]
    ]
    return {"setVariableResult": out}, None


def _trigger(c: LeanCharger, p: dict[str, Any]) -> Answer:
    if p["requestedMessage"] in ("MeterValues", "TransactionEvent"):
        return {"status": "Accepted"}, lambda: c.report(changed=True)
    return {"status": "NotImplemented"}, None


ANSWERS_16: dict[str, Callable[[LeanCharger, dict[str, Any]], Answer]] = {
    "SetChargingProfile": _set_16,
    "ClearChargingProfile": _clear,
    "GetConfiguration": _get_configuration,
    "ChangeConfiguration": lambda c, p: ({"status": "NotSupported"}, None),
    "GetCompositeSchedule": lambda c, p: ({"status": "Rejected"}, None),
    "TriggerMessage": _trigger,
}
ANSWERS_201: dict[str, Callable[[LeanCharger, dict[str, Any]], Answer]] = {
    "SetChargingProfile": _set_201,
    "ClearChargingProfile": _clear,
    "GetVariables": _get_variables,
    "SetVariables": _set_variables,
    "GetCompositeSchedule": lambda c, p: ({"status": "Rejected"}, None),
    "TriggerMessage": _trigger,
}


class LeanFleet:
    """Many :class:`LeanCharger`; connects ramped, reconnects after a refusal or a loss."""

    def __init__(
        self,
        specs: Sequence[StationSpec],
        url: str,
        password: str,
        *,
        meter_interval: float = 10.0,
        connect_rate: float = 200.0,
        seed: int = 7,
    ) -> None:
        rest = url.removeprefix("ws://")
        hostport, _, path = rest.partition("/")
        self.host, _, port = hostport.partition(":")
        self.port = int(port or 80)
        self.path = "/" + path.rstrip("/")
        self.specs = list(specs)
        self.password = password
        self.meter_interval = meter_interval
        self.connect_rate = connect_rate
        self.rng = random.Random(seed)
        self.offer_w = {
            s.station_id: s.max_station_kw * 1000.0 * self.rng.uniform(0.6, 1.0) for s in specs
        }
        self.chargers: dict[str, LeanCharger] = {}
        self.connected: set[str] = set()
        self.sent = self.received = 0
        self.calls: Counter[str] = Counter()
        self.call_errors: Counter[tuple[str, str]] = Counter()
        self.stats: Counter[str] = Counter()
        self.on_profile: Callable[[str, float], None] | None = None
        self._stopping = False
        self._ramp: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # -- life cycle ---------------------------------------------------------------------
    async def start(self) -> None:
        self._ramp = asyncio.create_task(self._launch())

    async def _launch(self) -> None:
        gap = 1.0 / self.connect_rate
        t0 = time.monotonic()
        for i, spec in enumerate(self.specs):
            if self._stopping:
                return
            self._connect(spec)
            delay = t0 + (i + 1) * gap - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)

    def _connect(self, spec: StationSpec) -> None:
        async def go() -> None:
            loop = asyncio.get_running_loop()
            try:
                await loop.create_connection(
                    lambda: LeanCharger(self, spec, self.offer_w[spec.station_id]),
                    self.host,
                    self.port,
                )
            except OSError as exc:
                self.stats[f"connect {type(exc).__name__}"] += 1
                self._retry(spec)

        task = asyncio.create_task(go())
        self._tasks.add(task)  # the loop keeps only weak references to tasks
        task.add_done_callback(self._tasks.discard)

    def _retry(self, spec: StationSpec) -> None:
        if not self._stopping:
            delay = self.rng.uniform(0.5, 5.0)
            asyncio.get_running_loop().call_later(delay, self._connect, spec)

    def booted(self, charger: LeanCharger) -> None:
        self.connected.add(charger.spec.station_id)

    def lost(self, charger: LeanCharger) -> None:
        sid = charger.spec.station_id
        if self.chargers.get(sid) is charger:
            self.connected.discard(sid)
        self.stats["disconnects"] += 1
        self._retry(charger.spec)

    def profile(self, station_id: str) -> None:
        if self.on_profile is not None:
            self.on_profile(station_id, time.time())

    async def wait_connected(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while len(self.connected) < len(self.specs):
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.1)
        return True

    async def stop(self) -> None:
        self._stopping = True
        if self._ramp is not None:
            self._ramp.cancel()
            with contextlib.suppress(BaseException):
                await self._ramp
        for c in list(self.chargers.values()):
            if c.timer is not None:
                c.timer.cancel()
            if c.transport is not None:
                c.write(8, (1000).to_bytes(2, "big"))
                c.transport.close()
        await asyncio.sleep(0.2)

    # -- figures --------------------------------------------------------------------------
    def unanswered(self) -> Counter[str]:
        """Calls still waiting for an answer, per action (connected chargers only)."""
        out: Counter[str] = Counter()
        for sid in self.connected:
            for action, _ in self.chargers[sid].pending.values():
                out[action] += 1
        return out

    def refused_readings(self) -> int:
        return sum(n for (action, _), n in self.call_errors.items() if action in _READINGS)


class CpuWindow:
    """This process's CPU seconds over wall seconds, and per message, between two points."""

    def __init__(self, fleet: LeanFleet) -> None:
        self.fleet = fleet
        self.cpu0, self.wall0 = time.process_time(), time.monotonic()
        self.msgs0 = fleet.sent + fleet.received

    def close(self) -> tuple[float, float, int]:
        """(CPU s, wall s, messages sent + received) since construction."""
        return (
            time.process_time() - self.cpu0,
            time.monotonic() - self.wall0,
            self.fleet.sent + self.fleet.received - self.msgs0,
        )
