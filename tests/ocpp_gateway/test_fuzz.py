"""Hypothesis fuzz of raw frames on one connection while another charger keeps working.

The gateway, a well-behaved 1.6 charger sending MeterValues in a loop, and the fuzzed
connection live on an event loop in a background thread for the whole module; each
Hypothesis example sends its frames on the fuzzed connection and checks that every answer
is a well-formed CallResult/CallError and that the connection still answers a probe.
At the end, the steady charger must have had every call acknowledged.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import websockets
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ocpp.v16 import call

from ocpp_gateway import Gateway, GatewayConfig
from pipeline.bus import LocalBus
from tests.ocpp_gateway.chargers import charger, now_iso

ACTIONS = [
    "Heartbeat", "MeterValues", "BootNotification", "StartTransaction", "StopTransaction",
    "StatusNotification", "DataTransfer", "Authorize", "Nope",
]  # fmt: skip

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)  # fmt: skip
payloads = st.fixed_dictionaries(
    {},
    optional={
        "connectorId": json_values, "meterValue": json_values, "transactionId": json_values,
        "idTag": json_values, "meterStart": json_values, "timestamp": json_values,
        "chargePointVendor": json_values, "chargePointModel": json_values, "vendorId": json_values,
    },
) | st.dictionaries(st.text(max_size=12), json_values, max_size=4)  # fmt: skip
meter_payloads = st.builds(
    lambda c, v, ts: {"connectorId": c, "meterValue": [{"timestamp": ts, "sampledValue": [v]}]},
    st.integers(-2, 3) | st.text(max_size=3),
    st.fixed_dictionaries({"value": st.text(max_size=8) | st.integers()},
                          optional={"unit": st.sampled_from(["W", "kW", "Wh", "x"]),
                                    "measurand": st.sampled_from(["Power.Active.Import", "SoC"]),
                                    "phase": st.sampled_from(["L1", "N", "L1-N"])}),
    st.sampled_from([now_iso(), "yesterday", "2026-01-01T00:00:00"]),
)  # fmt: skip
calls = st.builds(
    lambda uid, action, payload: json.dumps([2, uid, action, payload]),
    st.text(min_size=1, max_size=36) | st.integers(),
    st.sampled_from(ACTIONS) | st.text(max_size=30),
    payloads | meter_payloads,
)
frames = (
    calls
    | st.text(max_size=200)
    | json_values.map(json.dumps)
    | st.lists(json_values, max_size=6).map(json.dumps)
)


class Harness:
    """A gateway, a steady charger and a fuzzed socket on a loop in another thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.acks = 0
        self.failures: list[BaseException] = []
        self.probes = itertools.count()
        self.codes: collections.Counter[str] = collections.Counter()

    def run(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def setup(self) -> None:
        self.bus = LocalBus()
        await self.bus.start()
        # the steady charger sends ~100 calls/s: above the default budget, on purpose here
        config = GatewayConfig(port=0, allow_unknown_stations=True, budget_msgs_per_s=1000)
        self.gw = Gateway(self.bus, config)
        await self.gw.start()
        self.stop = asyncio.Event()
        self.steady = asyncio.create_task(self._steady())
        self.ws = {
            v: await websockets.connect(
                f"ws://127.0.0.1:{self.gw.port}/ocpp/CP-FUZZ-{v}", subprotocols=[f"ocpp{v}"]
            )
            for v in ("1.6", "2.0.1")
        }

    async def _steady(self) -> None:
        async with charger(self.gw.port, "CP-STEADY") as cp:
            while not self.stop.is_set():
                try:
                    mv = call.MeterValues(
                        connector_id=1,
                        meter_value=[{"timestamp": now_iso(), "sampledValue": [{"value": "5"}]}],
                    )
                    await cp.call(mv, suppress=False)
                    self.acks += 1
                except Exception as exc:  # collected and asserted on at the end
                    self.failures.append(exc)
                await asyncio.sleep(0.01)

    async def send(self, version: str, frames_: list[str]) -> list[Any]:
        ws = self.ws[version]
        answers: list[Any] = []
        for frame in frames_:
            await ws.send(frame)
        probe = f"probe-{next(self.probes)}"
        await ws.send(json.dumps([2, probe, "Heartbeat", {}]))
        async with asyncio.timeout(10):
            while True:
                answer = json.loads(await ws.recv())
                if answer[:2] == [3, probe]:
                    return answers
                answers.append(answer)

    async def teardown(self) -> None:
        self.stop.set()
        await self.steady
        for ws in self.ws.values():
            await ws.close()
        await self.gw.stop()
        await self.bus.stop()


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    h = Harness()
    h.run(h.setup())
    yield h
    h.run(h.teardown())
    h.loop.call_soon_threadsafe(h.loop.stop)
    h.thread.join(5)
    assert not h.failures, h.failures[:3]
    assert h.acks > 0
    # the fuzz reached the interesting paths, not just one kind of refusal
    assert {"ProtocolError", "FormationViolation", "FormatViolation"} <= set(h.codes), h.codes


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batch=st.lists(frames, min_size=1, max_size=8))
@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_fuzzed_frames_get_wellformed_answers(
    harness: Harness, version: str, batch: list[str]
) -> None:
    answers = harness.run(harness.send(version, batch))
    for answer in answers:
        assert isinstance(answer, list) and answer[0] in (2, 3, 4)  # 2: our own calls
        if answer[0] == 4:
            assert isinstance(answer[2], str) and answer[2]
            harness.codes[answer[2]] += 1
    assert harness.gw.stations.get("CP-STEADY") is not None
    assert not harness.failures
