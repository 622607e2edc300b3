"""Every 2.0.1 handler against a real ocpp-library charging station over a websocket."""

from __future__ import annotations

import pytest
import websockets
from ocpp.v201 import call

from ocpp_gateway import Gateway
from pipeline import topics
from pipeline.bus import Bus
from pipeline.contracts import MeterValue, StationStatus, decode
from tests.ocpp_gateway.chargers import charger, now_iso, wait_records

STATION = {"model": "M", "vendor_name": "V"}


def sample(kw: float, kwh: float) -> dict:
    return {
        "timestamp": now_iso(),
        "sampled_value": [
            {"value": kw, "measurand": "Power.Active.Import",
             "unit_of_measure": {"unit": "kW"}},
            {"value": kwh * 1000},
        ],
    }  # fmt: skip


async def test_boot_heartbeat_status_authorize(gateway: Gateway, bus: Bus) -> None:
    async with charger(gateway.port, "CS201-A", "2.0.1") as cs:
        boot = await cs.call(call.BootNotification(charging_station=STATION, reason="PowerUp"))
        assert boot.status == "Accepted"
        assert (await cs.call(call.Heartbeat())).current_time
        await cs.call(
            call.StatusNotification(
                timestamp=now_iso(), connector_status="Occupied", evse_id=1, connector_id=1
            )
        )
        auth = await cs.call(call.Authorize(id_token={"id_token": "T", "type": "ISO14443"}))
        assert auth.id_token_info["status"] == "Accepted"
    records = await wait_records(bus, topics.STATION_STATUS, key="CS201-A", count=4)
    statuses = [decode(StationStatus, r.value) for r in records]
    assert [s.event for s in statuses][1:3] == ["BootNotification", "StatusNotification"]
    assert (statuses[2].connector_id, statuses[2].status) == (1, "Occupied")
    assert statuses[0].ocpp_version == "2.0.1"


async def test_status_of_each_connector_of_an_evse(gateway: Gateway, bus: Bus) -> None:
    # 2.0.1: StatusNotification carries evseId and connectorId (the connector within the
    # EVSE); an EVSE with two connectors reports each. Both are kept: connector_id is the
    # EVSE (as in meter values and sessions), evse_connector_id the connector.
    async with charger(gateway.port, "CS201-E", "2.0.1") as cs:
        for connector, status in ((1, "Occupied"), (2, "Available")):
            await cs.call(
                call.StatusNotification(
                    timestamp=now_iso(), connector_status=status, evse_id=1,
                    connector_id=connector,
                )
            )  # fmt: skip
    records = await wait_records(bus, topics.STATION_STATUS, key="CS201-E", count=3)
    statuses = [decode(StationStatus, r.value) for r in records]
    reported = [(s.connector_id, s.evse_connector_id, s.status) for s in statuses
                if s.event == "StatusNotification"]  # fmt: skip
    assert reported == [(1, 1, "Occupied"), (1, 2, "Available")]


async def test_transaction_events_and_meter_values(gateway: Gateway, bus: Bus) -> None:
    tx = {"transaction_id": "tx-201-1"}
    async with charger(gateway.port, "CS201-B", "2.0.1") as cs:
        started = await cs.call(
            call.TransactionEvent(
                event_type="Started", timestamp=now_iso(), trigger_reason="CablePluggedIn",
                seq_no=0, transaction_info=tx, evse={"id": 2, "connector_id": 1},
                id_token={"id_token": "T", "type": "ISO14443"}, meter_value=[sample(0, 10)],
            )
        )  # fmt: skip
        assert started.id_token_info["status"] == "Accepted"
        await cs.call(
            call.TransactionEvent(
                event_type="Updated", timestamp=now_iso(), trigger_reason="MeterValuePeriodic",
                seq_no=1, transaction_info=tx, meter_value=[sample(11, 12)],
            )
        )  # fmt: skip
        # MeterValues outside TransactionEvent still gets the EVSE's running session
        await cs.call(call.MeterValues(evse_id=2, meter_value=[sample(10.5, 12.5)]))
        await cs.call(
            call.TransactionEvent(
                event_type="Ended", timestamp=now_iso(), trigger_reason="EVDeparted",
                seq_no=2, transaction_info=tx,
                meter_value=[{"timestamp": now_iso(), "sampled_value": [{"value": 13000}]}],
            )
        )  # fmt: skip
        await cs.call(call.MeterValues(evse_id=2, meter_value=[sample(0, 13)]))
    rows = [decode(MeterValue, r.value) for r in await wait_records(
        bus, topics.METER_VALUES, key="CS201-B", count=5)]  # fmt: skip
    assert [r.session_id for r in rows] == ["tx-201-1"] * 4 + [None]
    assert {r.connector_id for r in rows} == {2}
    assert [r.power_kw for r in rows] == [0.0, 11.0, 10.5, 0.0, 0.0]
    assert rows[3].energy_kwh == 13.0 and rows[1].ocpp_version == "2.0.1"


async def test_notify_report_event_security(gateway: Gateway) -> None:
    async with charger(gateway.port, "CS201-C", "2.0.1") as cs:
        assert await cs.call(
            call.NotifyReport(request_id=1, generated_at=now_iso(), seq_no=0, tbc=False)
        ) is not None  # fmt: skip
        event = {
            "event_id": 1, "timestamp": now_iso(), "trigger": "Alerting", "actual_value": "x",
            "event_notification_type": "HardWiredNotification",
            "component": {"name": "EVSE"}, "variable": {"name": "Problem"},
        }  # fmt: skip
        assert await cs.call(
            call.NotifyEvent(generated_at=now_iso(), seq_no=0, event_data=[event])
        ) is not None  # fmt: skip
        assert await cs.call(
            call.SecurityEventNotification(type="StartupOfTheDevice", timestamp=now_iso())
        ) is not None  # fmt: skip


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("garbage", "FormatViolation"),
        ('[2, "u1", "NoSuchAction", {}]', "NotImplemented"),
        ('[2, "u2", "Get15118EVCertificate", {}]', "NotSupported"),
        ('[2, "u3", "Heartbeat", {"bogus": 1}]', "FormatViolation"),
        ('[2, "u4", "MeterValues", {"evseId": "1", "meterValue": []}]',
         "TypeConstraintViolation"),
        ('[2, "u5", "MeterValues", {"evseId": 1}]', "OccurrenceConstraintViolation"),
    ],
)  # fmt: skip
async def test_bad_calls_get_callerrors(gateway: Gateway, frame: str, code: str) -> None:
    async with websockets.connect(
        f"ws://127.0.0.1:{gateway.port}/ocpp/CS201-E", subprotocols=["ocpp2.0.1"]
    ) as ws:
        await ws.send(frame)
        answer = await ws.recv()
        assert f'"{code}"' in answer and answer.startswith("[4,")
        await ws.send('[2, "ok", "Heartbeat", {}]')
        assert (await ws.recv()).startswith('[3,"ok"')
