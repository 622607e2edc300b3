"""Every 1.6 handler against a real ocpp-library charger over a real websocket."""

from __future__ import annotations

import pytest
import websockets
from ocpp.exceptions import OCPPError
from ocpp.v16 import call

from ocpp_gateway import Gateway
from pipeline import topics
from pipeline.bus import Bus
from pipeline.contracts import MeterValue, StationStatus, decode
from tests.ocpp_gateway.chargers import charger, now_iso, wait_records


async def test_boot_heartbeat_status_authorize(gateway: Gateway, bus: Bus) -> None:
    async with charger(gateway.port, "CP16-A") as cp:
        boot = await cp.call(call.BootNotification(charge_point_vendor="V", charge_point_model="M"))
        assert boot.status == "Accepted" and boot.interval == 300
        beat = await cp.call(call.Heartbeat())
        assert beat.current_time.endswith("+00:00")
        await cp.call(
            call.StatusNotification(
                connector_id=1, error_code="NoError", status="Charging", timestamp=now_iso()
            )
        )
        auth = await cp.call(call.Authorize(id_tag="TAG1"))
        assert auth.id_tag_info["status"] == "Accepted"
    records = await wait_records(bus, topics.STATION_STATUS, key="CP16-A", count=4)
    statuses = [decode(StationStatus, r.value) for r in records]
    assert [s.event for s in statuses] == [
        "Connected",
        "BootNotification",
        "StatusNotification",
        "Disconnected",
    ]
    assert (statuses[2].connector_id, statuses[2].status) == (1, "Charging")
    assert all(s.ocpp_version == "1.6" for s in statuses)


async def test_transaction_lifecycle_tracks_sessions(gateway: Gateway, bus: Bus) -> None:
    async with charger(gateway.port, "CP16-B") as cp:
        start = await cp.call(
            call.StartTransaction(connector_id=2, id_tag="T", meter_start=1000, timestamp=now_iso())
        )
        tx = start.transaction_id
        assert isinstance(tx, int) and start.id_tag_info["status"] == "Accepted"
        power = {"value": "3.5", "unit": "kW", "measurand": "Power.Active.Import"}
        sample = {"timestamp": now_iso(), "sampledValue": [power]}
        # no transactionId in the call: the session comes from the connector's transaction
        await cp.call(call.MeterValues(connector_id=2, meter_value=[sample]))
        stop = await cp.call(
            call.StopTransaction(
                meter_stop=5000,
                timestamp=now_iso(),
                transaction_id=tx,
                transaction_data=[{"timestamp": now_iso(), "sampledValue": [{"value": "4900"}]}],
            )
        )
        assert stop.id_tag_info["status"] == "Accepted"
        await cp.call(call.MeterValues(connector_id=2, meter_value=[sample]))
    rows = [decode(MeterValue, r.value) for r in await wait_records(
        bus, topics.METER_VALUES, key="CP16-B", count=5)]  # fmt: skip
    assert [(r.connector_id, r.session_id) for r in rows] == [(2, str(tx))] * 4 + [(2, None)]
    assert rows[0].energy_kwh == 1.0 and rows[1].power_kw == 3.5
    assert rows[2].energy_kwh == 4.9 and rows[3].energy_kwh == 5.0 and rows[3].power_kw == 0.0


async def test_data_transfer_diagnostics_firmware(gateway: Gateway) -> None:
    async with charger(gateway.port, "CP16-C") as cp:
        dt = await cp.call(call.DataTransfer(vendor_id="acme", data="x"))
        assert dt.status == "UnknownVendorId"
        assert await cp.call(call.DiagnosticsStatusNotification(status="Uploaded")) is not None
        assert await cp.call(call.FirmwareStatusNotification(status="Installed")) is not None


async def test_meter_values_with_transaction_id_and_bad_value(gateway: Gateway, bus: Bus) -> None:
    async with charger(gateway.port, "CP16-D") as cp:
        await cp.call(
            call.MeterValues(
                connector_id=1,
                transaction_id=77,
                meter_value=[{"timestamp": now_iso(), "sampledValue": [{"value": "10"}]}],
            )
        )
        with pytest.raises(OCPPError) as info:
            await cp.call(
                call.MeterValues(
                    connector_id=1,
                    meter_value=[{"timestamp": now_iso(), "sampledValue": [{"value": "ten"}]}],
                ),
                suppress=False,
            )
        assert info.value.code == "FormationViolation"
    (record,) = await wait_records(bus, topics.METER_VALUES, key="CP16-D")
    assert decode(MeterValue, record.value).session_id == "77"


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ('[2, "u1", "NoSuchAction", {}]', "NotImplemented"),
        ('[2, "u2", "CancelReservation", {"reservationId": 1}]', "NotSupported"),
        ('[2, "u3", "Heartbeat", {"bogus": 1}]', "FormationViolation"),
        ('[2, "u4", "MeterValues", {"connectorId": "1", "meterValue": []}]',
         "TypeConstraintViolation"),
        ('[2, "u5", "StartTransaction", {"connectorId": 1}]', "OccurenceConstraintViolation"),
    ],
)  # fmt: skip
async def test_bad_calls_get_callerrors(gateway: Gateway, frame: str, code: str) -> None:
    async with websockets.connect(
        f"ws://127.0.0.1:{gateway.port}/ocpp/CP16-E", subprotocols=["ocpp1.6"]
    ) as ws:
        await ws.send(frame)
        answer = await ws.recv()
        assert f'"{code}"' in answer and answer.startswith("[4,")
        await ws.send('[2, "ok", "Heartbeat", {}]')  # the connection keeps working
        assert (await ws.recv()).startswith('[3,"ok"')


async def test_session_survives_a_reconnect(gateway: Gateway, bus: Bus) -> None:
    async with charger(gateway.port, "CP16-R") as cp:
        start = await cp.call(
            call.StartTransaction(connector_id=1, id_tag="T", meter_start=0, timestamp=now_iso())
        )
    async with charger(gateway.port, "CP16-R") as cp:
        await cp.call(
            call.MeterValues(
                connector_id=1,
                meter_value=[{"timestamp": now_iso(), "sampledValue": [{"value": "500"}]}],
            )
        )
    records = await wait_records(bus, topics.METER_VALUES, key="CP16-R", count=2)
    assert decode(MeterValue, records[1].value).session_id == str(start.transaction_id)


async def test_without_validation_missing_fields_still_get_a_callerror(bus: Bus) -> None:
    from ocpp_gateway import GatewayConfig

    gw = Gateway(bus, GatewayConfig(port=0, allow_unknown_stations=True, validate=False))
    await gw.start()
    try:
        async with websockets.connect(
            f"ws://127.0.0.1:{gw.port}/ocpp/CP16-NV", subprotocols=["ocpp1.6"]
        ) as ws:
            await ws.send('[2, "u1", "MeterValues", {"connectorId": 1}]')
            assert '"FormationViolation"' in await ws.recv()
    finally:
        await gw.stop()


async def test_boot_storm_answered_pending_beyond_the_rate(bus: Bus) -> None:
    from ocpp_gateway import GatewayConfig

    config = GatewayConfig(port=0, allow_unknown_stations=True, boot_rate_per_s=1.0,
                           boot_retry_s=30)  # fmt: skip
    gw = Gateway(bus, config)
    await gw.start()
    try:
        async with charger(gw.port, "CP16-S1") as a, charger(gw.port, "CP16-S2") as b:
            boot = call.BootNotification(charge_point_vendor="V", charge_point_model="M")
            first, second = await a.call(boot), await b.call(boot)
            assert first.status == "Accepted"
            assert second.status == "Pending" and 30 <= second.interval <= 60
            assert not gw.stations["CP16-S2"].booted
    finally:
        await gw.stop()


def test_boot_throttle_refills_over_time() -> None:
    from ocpp_gateway.station import BootThrottle

    now = [0.0]
    bucket = BootThrottle(2.0, clock=lambda: now[0])
    assert [bucket.admit() for _ in range(3)] == [True, True, False]
    now[0] += 0.5  # one token back
    assert [bucket.admit() for _ in range(2)] == [True, False]
