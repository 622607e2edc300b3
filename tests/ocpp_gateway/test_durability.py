"""Never acknowledge before durable: a bus that cannot confirm -> CallError, retry lands."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from ocpp.exceptions import InternalError
from ocpp.v16 import call

from ocpp_gateway import Gateway, GatewayConfig
from pipeline import topics
from pipeline.bus import LocalBus, wal
from pipeline.contracts import MeterValue, decode
from tests.fixtures.kafka import KafkaBroker, unique_key
from tests.fixtures.stalled_log import StalledLog
from tests.ocpp_gateway.chargers import charger, now_iso, wait_records


def reading(value: str) -> call.MeterValues:
    return call.MeterValues(
        connector_id=1,
        meter_value=[{"timestamp": now_iso(), "sampledValue": [{"value": value}]}],
    )


async def test_stopped_local_bus_refuses_ack_then_retry_lands() -> None:
    bus = LocalBus()
    await bus.start()
    gw = Gateway(bus, GatewayConfig(port=0, allow_unknown_stations=True, ack_timeout=1.0))
    await gw.start()
    try:
        async with charger(gw.port, "CP-DUR") as cp:
            await bus.stop()
            with pytest.raises(InternalError):
                await cp.call(reading("1000"), suppress=False)
            assert gw.metrics.acks_refused._value.get() == 1
            assert gw.metrics.readings_refused.labels("not_durable")._value.get() >= 1
            await bus.start()
            assert await cp.call(reading("1000"), suppress=False) is not None
        (record,) = await wait_records(bus, topics.METER_VALUES, key="CP-DUR")
        assert decode(MeterValue, record.value).energy_kwh == 1.0
    finally:
        await gw.stop()
        await bus.stop()


async def test_stopped_kafka_broker_refuses_ack_then_retry_lands(own_tansu: KafkaBroker) -> None:
    from pipeline.bus import KafkaBus

    bus = KafkaBus(own_tansu.bootstrap, publish_timeout=1.5, **own_tansu.bus_config())
    await bus.start()
    gw = Gateway(bus, GatewayConfig(port=0, allow_unknown_stations=True, ack_timeout=2.0))
    await gw.start()
    station = unique_key("CP-KDUR")
    try:
        async with charger(gw.port, station) as cp:
            assert await cp.call(reading("1000"), suppress=False) is not None
            own_tansu.stop()
            with pytest.raises(InternalError):
                await cp.call(reading("2000"), suppress=False)
            assert gw.metrics.acks_refused._value.get() >= 1
            await asyncio.to_thread(own_tansu.start)
            # Tansu keeps topics in memory only; a real broker restarts with its topics
            await asyncio.to_thread(bus.create_topics)
            # the charger retries (as OCPP chargers do) until the gateway acknowledges
            async with asyncio.timeout(60):
                while True:
                    try:
                        await cp.call(reading("2000"), suppress=False)
                        break
                    except InternalError:
                        await asyncio.sleep(0.5)
        records = await wait_records(bus, topics.METER_VALUES, key=station, timeout=30)
        values = {decode(MeterValue, r.value).energy_kwh for r in records}
        assert 2.0 in values  # the acknowledged retry is on the (restarted) broker
    finally:
        await gw.stop()
        await bus.stop()


def energies_in_log(path: Path) -> list[float]:
    """kWh of every meter value the log file holds (what a restart would read)."""
    return [
        decode(MeterValue, e.value).energy_kwh  # type: ignore[arg-type]
        for e in wal.recover(path / "bus.log")
        if e.topic == topics.METER_VALUES
    ]


@contextlib.asynccontextmanager
async def stalled_gateway(
    tmp_path: Path, *, ack_timeout: float
) -> AsyncIterator[tuple[Gateway, StalledLog]]:
    """A gateway on a WAL whose writes are held (``StalledLog``) until released; the
    bus's own timeout (30 s) is longer than any ``ack_timeout`` used here."""
    bus = LocalBus(tmp_path, publish_timeout=30)
    await bus.start()
    gw = Gateway(bus, GatewayConfig(port=0, allow_unknown_stations=True, ack_timeout=ack_timeout))
    await gw.start()
    stall = StalledLog(bus)
    try:
        yield gw, stall
    finally:
        stall.release()
        await gw.stop()
        await bus.stop()


async def test_no_callresult_while_the_wal_is_stalled_and_the_acked_reading_survives(
    tmp_path: Path,
) -> None:
    async with (
        stalled_gateway(tmp_path, ack_timeout=30) as (gw, stall),
        charger(gw.port, "CP-WAL") as cp,
    ):
        answer = asyncio.ensure_future(cp.call(reading("1500"), suppress=False))
        await asyncio.to_thread(stall.entered.wait, 10)  # the reading is at the log
        await asyncio.sleep(0.3)  # room for a (wrong) early answer to arrive
        assert not answer.done()  # not durable yet: no CallResult
        assert energies_in_log(tmp_path) == []
        stall.release()
        assert await answer is not None  # acknowledged once written and fsynced
        assert energies_in_log(tmp_path) == [1.5]
    reopened = LocalBus(tmp_path)  # a restart: the acknowledged reading is not dropped
    await reopened.start()
    try:
        (record,) = await wait_records(reopened, topics.METER_VALUES, key="CP-WAL")
        assert decode(MeterValue, record.value).energy_kwh == 1.5
    finally:
        await reopened.stop()


async def test_a_stall_past_the_ack_timeout_is_refused_and_the_retry_lands(
    tmp_path: Path,
) -> None:
    async with (
        stalled_gateway(tmp_path, ack_timeout=0.5) as (gw, stall),
        charger(gw.port, "CP-WAL2") as cp,
    ):
        with pytest.raises(InternalError):  # a CallError, never a CallResult
            await cp.call(reading("2500"), suppress=False)
        stall.release()
        assert await cp.call(reading("2500"), suppress=False) is not None
    # the refused attempt may reach the log too once the disk moves (at least once);
    # the acknowledged retry must be there
    assert 2.5 in energies_in_log(tmp_path)
    assert set(energies_in_log(tmp_path)) == {2.5}
