"""Never acknowledge before durable: a bus that cannot confirm -> CallError, retry lands."""

from __future__ import annotations

import asyncio

import pytest
from ocpp.exceptions import InternalError
from ocpp.v16 import call

from ocpp_gateway import Gateway, GatewayConfig
from pipeline import topics
from pipeline.bus import LocalBus
from pipeline.contracts import MeterValue, decode
from tests.fixtures.kafka import KafkaBroker, unique_key
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
