"""Hostile readings against a running gateway (issue 11): real ocpp-library chargers over
real websockets, the in-process bus of ``gridctl run``.

Time is the gateway's: a charger clock beyond the skew bound is replaced by the received
time. Impossible or out-of-range readings get a CallError and nothing reaches the bus, so
nothing acknowledged can later be refused by the engine, and nothing impossible is summed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from ocpp.exceptions import OCPPError
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from ocpp_gateway import Gateway, GatewayConfig
from pipeline import topics
from pipeline.bus import Bus
from pipeline.contracts import MeterValue, StationZone, decode, encode
from tests.ocpp_gateway.chargers import charger, now_iso, wait_records

P = "Power.Active.Import"


def mv16(connector: int, *sampled: dict[str, Any], ts: str | None = None) -> Any:
    sample = {"timestamp": ts or now_iso(), "sampledValue": list(sampled)}
    return call16.MeterValues(connector_id=connector, meter_value=[sample])


async def refused(cp: Any, payload: Any) -> OCPPError:
    with pytest.raises(OCPPError) as err:
        await cp.call(payload, suppress=False)
    return err.value


async def readings(bus: Bus, key: str, count: int) -> list[MeterValue]:
    records = await wait_records(bus, topics.METER_VALUES, key=key, count=count)
    return [decode(MeterValue, r.value, topic=topics.METER_VALUES) for r in records]


async def only_marker_arrived(bus: Bus, key: str) -> list[MeterValue]:
    """Everything ``key`` published, ended by the marker reading (energy 1 kWh) sent last."""
    rows = await readings(bus, key, 1)
    await asyncio.sleep(0.2)  # anything published before the marker is on the bus by now
    sub = bus.subscribe([topics.METER_VALUES], group=None, from_beginning=True)
    try:
        got = [r for r in await sub.batch(10_000, timeout=0.5) if r.key == key]
    finally:
        await sub.close()
    rows = [decode(MeterValue, r.value) for r in got]
    assert rows and rows[-1].energy_kwh == 1.0
    return rows


async def test_a_clock_in_2100_or_1970_gets_the_received_time(gateway: Gateway, bus: Bus) -> None:
    async with charger(gateway.port, "CP-CLOCK") as cp:
        before = datetime.now(UTC)
        await cp.call(
            mv16(1, {"value": "7.4", "measurand": P, "unit": "kW"}, ts="2100-01-01T00:00:00Z")
        )
        await cp.call(
            mv16(1, {"value": "7.4", "measurand": P, "unit": "kW"}, ts="1970-01-01T00:00:00Z")
        )
        good = (datetime.now(UTC) - timedelta(seconds=2)).isoformat()
        await cp.call(mv16(1, {"value": "7.4", "measurand": P, "unit": "kW"}, ts=good))
        after = datetime.now(UTC)
    future, past, ok = await readings(bus, "CP-CLOCK", 3)
    for row in (future, past):
        assert before <= row.event_ts <= after and row.event_ts == row.received_ts
    assert future.charger_ts == datetime(2100, 1, 1, tzinfo=UTC)
    assert past.charger_ts == datetime(1970, 1, 1, tzinfo=UTC)
    assert ok.charger_ts is None and ok.event_ts == datetime.fromisoformat(good)
    text = gateway.metrics.render().decode()
    assert 'gridctl_ocpp_clock_skew_readings_total{station_id="CP-CLOCK"} 2.0' in text


@pytest.mark.parametrize(
    ("connector", "sampled", "code"),
    [
        (2**40, {"value": "5", "measurand": P, "unit": "kW"}, "PropertyConstraintViolation"),
        (-1, {"value": "5", "measurand": P, "unit": "kW"}, "PropertyConstraintViolation"),
        (1, {"value": "-7400", "measurand": P, "unit": "W"}, "PropertyConstraintViolation"),
        (1, {"value": "NaN", "measurand": P, "unit": "W"}, "PropertyConstraintViolation"),
        (1, {"value": "Infinity", "measurand": P, "unit": "W"}, "PropertyConstraintViolation"),
        (1, {"value": "7400", "measurand": P, "unit": "Wh"}, "PropertyConstraintViolation"),
        (1, {"value": "1e12", "measurand": P, "unit": "W"}, "PropertyConstraintViolation"),
        (1, {"value": "abc", "measurand": P, "unit": "W"}, "FormationViolation"),
    ],
)
async def test_impossible_1_6_readings_are_refused_and_never_published(
    gateway: Gateway, bus: Bus, connector: int, sampled: dict[str, Any], code: str
) -> None:
    async with charger(gateway.port, "CP-BAD16") as cp:
        error = await refused(cp, mv16(connector, sampled))
        assert error.code == code
        await cp.call(mv16(1, {"value": "1000"}))  # the marker: 1 kWh; the connection lives
    rows = await only_marker_arrived(bus, "CP-BAD16")
    assert len(rows) == 1


async def test_status_notification_with_a_huge_connector_id_is_refused(gateway: Gateway) -> None:
    async with charger(gateway.port, "CP-STATUS") as cp:
        status = call16.StatusNotification(
            connector_id=2**40, error_code="NoError", status="Available"
        )
        assert (await refused(cp, status)).code == "PropertyConstraintViolation"


async def test_2_0_1_multiplier_400_is_a_property_violation_not_an_internal_error(
    gateway: Gateway, bus: Bus
) -> None:
    async with charger(gateway.port, "CS-MULT", "2.0.1") as cs:
        value = {"value": 1, "measurand": P, "unitOfMeasure": {"unit": "W", "multiplier": 400}}
        sample = {"timestamp": now_iso(), "sampledValue": [value]}
        error = await refused(cs, call201.MeterValues(evse_id=1, meter_value=[sample]))
        assert error.code == "PropertyConstraintViolation"
        assert "multiplier" in error.description
        huge = call201.TransactionEvent(
            event_type="Updated", timestamp=now_iso(), trigger_reason="MeterValuePeriodic",
            seq_no=1, transaction_info={"transaction_id": "tx-1"},
            evse={"id": 2**40},
            meter_value=[{"timestamp": now_iso(), "sampledValue": [{"value": 5}]}],
        )  # fmt: skip
        assert (await refused(cs, huge)).code == "PropertyConstraintViolation"
        marker = {"timestamp": now_iso(), "sampledValue": [{"value": 1000}]}
        await cs.call(call201.MeterValues(evse_id=1, meter_value=[marker]))
    assert len(await only_marker_arrived(bus, "CS-MULT")) == 1


@pytest.fixture
async def zoned(bus: Bus) -> AsyncIterator[Gateway]:
    zone = StationZone(station_id="CP-22KW", zone_id="Z", max_station_kw=22.0, contract_max_kw=22.0)
    await bus.publish(topics.STATION_ZONES, "CP-22KW", encode(zone))
    gw = Gateway(bus, GatewayConfig(port=0, allow_unknown_stations=True, max_power_factor=1.5))
    await gw.start()
    yield gw
    await gw.stop()


async def test_power_above_the_station_maximum_times_the_factor_is_refused(
    zoned: Gateway, bus: Bus
) -> None:
    async with charger(zoned.port, "CP-22KW") as cp:
        # 22 kW x 1.5 = 33 kW: 33.5 kW is refused, 33 kW is a (high) reading
        error = await refused(cp, mv16(1, {"value": "33.5", "measurand": P, "unit": "kW"}))
        assert error.code == "PropertyConstraintViolation" and "33" in error.description
        await cp.call(mv16(1, {"value": "33", "measurand": P, "unit": "kW"}))
    (row,) = await readings(bus, "CP-22KW", 1)
    assert row.power_kw == 33.0
