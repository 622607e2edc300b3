"""Counting right (issue 12): readings go to the connector/EVSE of their transaction, never
to a guessed one; events for ended transactions are not counted; an end reads 0 kW.

The state (:mod:`ocpp_gateway.sessions`) is a pure value, tested first; then real
ocpp-library chargers over websockets against gateways that restart on the same bus
(``ocpp.sessions`` kept) or on a new one (the state lost: nothing is guessed).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from ocpp_gateway import Gateway, GatewayConfig
from ocpp_gateway.sessions import CLOSED_KEPT, SessionBook, Sessions
from pipeline import topics
from pipeline.bus import Bus, LocalBus, Record
from pipeline.contracts import MeterValue, StationSessions, decode, encode
from tests.ocpp_gateway.chargers import charger, now_iso

T = datetime(2026, 12, 1, 12, tzinfo=UTC)


def rec(value: bytes | None) -> Record:
    return Record(topics.OCPP_SESSIONS, "S", value, offset=0, timestamp_ms=0)


# -- the state, as values ------------------------------------------------------------------
def test_start_end_and_the_closed_list() -> None:
    s = Sessions()
    assert s.start(1, "a") == Sessions({1: "a"})
    s = s.start(1, "a")
    assert s is not None and s.start(1, "a") is None  # known already: nothing to publish
    moved = s.start(2, "a")  # a transaction is on one connector only
    assert moved == Sessions({2: "a"})
    s = s.start(2, "b")
    assert s is not None and s.connector_of("b") == 2 and s.connector_of("zz") is None
    ended = s.end("a")
    assert ended.open == {2: "b"} and ended.is_closed("a") and not ended.is_closed("b")
    assert s.open == {1: "a", 2: "b"}  # the old value is untouched (adopted only if durable)
    for i in range(CLOSED_KEPT + 4):
        ended = ended.end(f"x{i}")
    assert len(ended.closed) == CLOSED_KEPT and ended.closed[0] == f"x{CLOSED_KEPT + 3}"
    assert not ended.is_closed("a")  # the oldest are forgotten


def test_the_state_survives_its_record_and_the_book_keeps_held_stations() -> None:
    s = Sessions({1: "tx-1", 3: "tx-3"}, ("tx-0",))
    record = s.record("S", T)
    assert [(o.connector_id, o.session_id) for o in record.open] == [(1, "tx-1"), (3, "tx-3")]
    back = decode(StationSessions, encode(record), topic=topics.OCPP_SESSIONS)
    assert Sessions.of_record(back) == s
    book = SessionBook()
    book.apply(rec(encode(record)))
    assert book.get("S") == s
    book.put("S", Sessions({2: "new"}))
    book.apply(rec(encode(record)), held={"S"})
    assert book.get("S") == Sessions({2: "new"})  # the holder's state is the newer one
    book.apply(rec(b"{not json"))
    assert book.get("S") == Sessions({2: "new"})  # a bad record changes nothing
    book.apply(rec(None))
    assert book.get("S") == Sessions()


# -- over websockets -------------------------------------------------------------------
CONFIG = GatewayConfig(port=0, allow_unknown_stations=True, ack_timeout=2.0)


@pytest.fixture
async def shared_bus() -> AsyncIterator[Bus]:
    bus = LocalBus()
    await bus.start()
    yield bus
    await bus.stop()


async def started(bus: Bus) -> Gateway:
    gateway = Gateway(bus, CONFIG)
    await gateway.start()
    return gateway


async def readings(bus: Bus, station: str) -> list[MeterValue]:
    sub = bus.subscribe([topics.METER_VALUES], group=None, from_beginning=True)
    try:
        got = await sub.batch(10_000, timeout=0)
    finally:
        await sub.close()
    return [decode(MeterValue, r.value) for r in got if r.key == station and r.value]


def kw(value: float) -> dict:
    return {
        "timestamp": now_iso(),
        "sampled_value": [
            {"value": value, "measurand": "Power.Active.Import", "unit_of_measure": {"unit": "kW"}}
        ],
    }


def event(
    kind: str, seq: int, tx: str, evse: int | None, *samples: dict
) -> call201.TransactionEvent:
    return call201.TransactionEvent(
        event_type=kind,
        timestamp=now_iso(),
        trigger_reason="MeterValuePeriodic",
        seq_no=seq,
        transaction_info={"transaction_id": tx},
        evse={"id": evse, "connector_id": 1} if evse is not None else None,
        meter_value=list(samples) or None,
    )


def ignored(gateway: Gateway, reason: str) -> float:
    return gateway.metrics.readings_ignored.labels(reason)._value.get()


async def test_201_events_without_evse_keep_their_evse_across_a_restart(shared_bus: Bus) -> None:
    gw = await started(shared_bus)
    try:
        async with charger(gw.port, "CS-TX", "2.0.1") as cs:
            await cs.call(event("Started", 0, "tx-a", 1, kw(73.3)))
    finally:
        await gw.stop()
    gw = await started(shared_bus)  # a new gateway: it knows tx-a from ocpp.sessions
    try:
        async with charger(gw.port, "CS-TX", "2.0.1") as cs:
            await cs.call(event("Updated", 1, "tx-a", None, kw(73.3)))
            await cs.call(event("Ended", 2, "tx-a", None))  # no meterValue: 0 kW all the same
            await cs.call(event("Updated", 3, "tx-a", None, kw(73.3)))  # replayed: ignored
            await cs.call(event("Ended", 4, "tx-a", 1, kw(73.3)))  # even with its evse
        rows = await readings(shared_bus, "CS-TX")
        assert [(r.connector_id, r.session_id, r.power_kw) for r in rows] == [
            (1, "tx-a", 73.3),
            (1, "tx-a", 73.3),  # EVSE 1, not 0: counted once
            (1, "tx-a", 0.0),
        ]
        assert ignored(gw, "closed_transaction") == 2 and ignored(gw, "unknown_evse") == 0
    finally:
        await gw.stop()


async def test_201_an_unknown_transaction_without_evse_is_not_guessed() -> None:
    bus = LocalBus()  # a gateway that lost ocpp.sessions (a new, empty bus)
    await bus.start()
    gw = await started(bus)
    try:
        async with charger(gw.port, "CS-LOST", "2.0.1") as cs:
            answer = await cs.call(event("Updated", 7, "tx-old", None, kw(73.3)))
            assert answer is not None  # acknowledged: the charger must not retry forever
            await cs.call(event("Ended", 8, "tx-old", None, kw(5.0)))
            await cs.call(event("Updated", 9, "tx-old", 1, kw(73.3)))  # ended: ignored
        assert await readings(bus, "CS-LOST") == []
        assert ignored(gw, "unknown_evse") == 2 and ignored(gw, "closed_transaction") == 1
    finally:
        await gw.stop()
        await bus.stop()


async def test_201_an_end_sampled_while_drawing_still_ends_at_0_kw(shared_bus: Bus) -> None:
    gw = await started(shared_bus)
    try:
        async with charger(gw.port, "CS-END", "2.0.1") as cs:
            await cs.call(event("Started", 0, "tx-e", 2, kw(11.0)))
            early = {**kw(10.0), "timestamp": "2020-01-01T00:00:00+00:00"}  # before the end
            ended = event("Ended", 1, "tx-e", None, early)
            await cs.call(ended)
        rows = await readings(shared_bus, "CS-END")
        # the stale sample got the received time (clock skew) and so lies after the end:
        # it reads 0 kW; an end is the connector's latest reading and draws nothing
        assert [(r.connector_id, r.power_kw) for r in rows] == [(2, 11.0), (2, 0.0)]
        assert rows[-1].charger_ts is not None
    finally:
        await gw.stop()


def sample16(watts: float) -> dict:
    return {
        "timestamp": now_iso(),
        "sampledValue": [{"value": str(watts), "measurand": "Power.Active.Import", "unit": "W"}],
    }


async def test_16_stop_after_a_restart_and_a_repeated_stop(shared_bus: Bus) -> None:
    gw = await started(shared_bus)
    try:
        async with charger(gw.port, "CP-TX") as cp:
            start = await cp.call(
                call16.StartTransaction(
                    connector_id=2, id_tag="T", meter_start=1000, timestamp=now_iso()
                )
            )
            tx = start.transaction_id
            await cp.call(call16.MeterValues(connector_id=2, meter_value=[sample16(11000)]))
    finally:
        await gw.stop()
    gw = await started(shared_bus)
    try:
        async with charger(gw.port, "CP-TX") as cp:
            stop = call16.StopTransaction(
                meter_stop=5000, timestamp=now_iso(), transaction_id=tx,
                transaction_data=[sample16(11000)],
            )  # fmt: skip
            await cp.call(stop)
            await cp.call(stop)  # the charger did not see our answer and sends it again
            late = call16.MeterValues(connector_id=2, transaction_id=tx, meter_value=[sample16(9)])
            await cp.call(late)
        rows = await readings(shared_bus, "CP-TX")
        assert [(r.connector_id, r.session_id, r.power_kw) for r in rows] == [
            (2, str(tx), None),  # StartTransaction: meterStart only
            (2, str(tx), 11.0),
            (2, str(tx), 0.0),  # transactionData sampled at the stop: the session is over
            (2, str(tx), 0.0),  # meterStop, on connector 2 although the stop names none
        ]
        assert rows[-1].energy_kwh == 5.0
        assert ignored(gw, "closed_transaction") == 2
    finally:
        await gw.stop()


async def test_16_a_transaction_seen_in_meter_values_is_learnt() -> None:
    bus = LocalBus()
    await bus.start()
    gw = await started(bus)
    try:
        async with charger(gw.port, "CP-LEARN") as cp:
            # a transaction this gateway never saw start (started before it ran)
            await cp.call(
                call16.MeterValues(connector_id=1, transaction_id=41, meter_value=[sample16(7400)])
            )
            await cp.call(call16.StopTransaction(meter_stop=9000, timestamp=now_iso(),
                                                 transaction_id=41))  # fmt: skip
            await cp.call(call16.StopTransaction(meter_stop=1, timestamp=now_iso(),
                                                 transaction_id=42))  # fmt: skip
        rows = await readings(bus, "CP-LEARN")
        assert [(r.connector_id, r.session_id, r.power_kw) for r in rows] == [
            (1, "41", 7.4),
            (1, "41", 0.0),
        ]
        assert ignored(gw, "unknown_evse") == 1  # 42: nothing says where it ran
        sub = bus.subscribe([topics.OCPP_SESSIONS], group=None, from_beginning=True)
        last = [r for r in await sub.batch(100, timeout=0) if r.key == "CP-LEARN"][-1]
        await sub.close()
        state = decode(StationSessions, last.value or b"", topic=topics.OCPP_SESSIONS)
        assert state.open == [] and state.closed == ["42", "41"]
    finally:
        await gw.stop()
        await bus.stop()
