"""The thin end-to-end slice (issue 2, item 6): real OCPP 1.6 over a real websocket.

A charger on the ocpp library sends MeterValues -> a contract record on
``ocpp.meter_values``; a record on ``ocpp.commands.set_charging_profile`` -> that charger
receives SetChargingProfile, and the attempt lands on ``ocpp.command_results``.
Runs on both buses through the shared ``any_bus`` fixture (LocalBus, and KafkaBus on the
session's Kafka-protocol broker: Tansu here).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from ocpp_gateway import Gateway, GatewayConfig
from pipeline import topics
from pipeline.bus import Bus
from pipeline.contracts import (
    CommandResult,
    MeterValue,
    SetChargingProfileCommand,
    decode,
    encode,
)
from tests.fixtures.kafka import unique_key
from tests.ocpp_gateway.chargers import charger, now_iso, wait_records


async def test_meter_values_in_and_profile_out(any_bus: Bus) -> None:
    slice_bus = any_bus
    station = unique_key("CP-SLICE")  # topics are shared with other tests on Kafka
    gateway = Gateway(slice_bus, GatewayConfig(port=0, allow_unknown_stations=True))
    await gateway.start()
    try:
        async with charger(gateway.port, station, "1.6") as cp:
            from ocpp.v16 import call

            await cp.call(call.BootNotification(charge_point_vendor="v", charge_point_model="m"))
            answer = await cp.call(
                call.MeterValues(
                    connector_id=1,
                    meter_value=[
                        {
                            "timestamp": now_iso(),
                            "sampledValue": [
                                {"value": "7400", "measurand": "Power.Active.Import", "unit": "W"},
                                {"value": "1234", "unit": "Wh"},
                            ],
                        }
                    ],
                )
            )
            assert answer is not None  # a CallResult, not a CallError

            (record,) = await wait_records(slice_bus, topics.METER_VALUES, key=station)
            reading = decode(MeterValue, record.value, topic=topics.METER_VALUES)
            assert reading.station_id == station
            assert reading.connector_id == 1
            assert reading.power_kw == pytest.approx(7.4)
            assert reading.energy_kwh == pytest.approx(1.234)
            assert reading.current_a is None
            assert reading.ocpp_version == "1.6"

            now = datetime.now(UTC)
            command = SetChargingProfileCommand(
                station_id=station,
                target_power_kw=11.0,
                signal_id="sig-1",
                priority=2,
                dr_end_ts=now + timedelta(hours=1),
                command_ts=now,
            )
            await slice_bus.publish(topics.SET_CHARGING_PROFILE, station, encode(command))
            profile = await asyncio.wait_for(cp.profiles.get(), 10)
            assert profile["connector_id"] == 0
            assert profile["charging_profile_purpose"] == "ChargePointMaxProfile"
            period = profile["charging_schedule"]["charging_schedule_period"][0]
            assert profile["charging_schedule"]["charging_rate_unit"] == "W"
            assert period["limit"] == 11000.0

            (res,) = await wait_records(slice_bus, topics.COMMAND_RESULTS, key=station)
            result = decode(CommandResult, res.value)
            assert (result.status, result.signal_id) == ("Accepted", "sig-1")
    finally:
        await gateway.stop()
