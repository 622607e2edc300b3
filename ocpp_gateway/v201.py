"""OCPP 2.0.1 CSMS handlers: one ``@on`` method per action a charging station sends."""

from __future__ import annotations

from typing import Any

import msgspec
from ocpp.routing import after, on
from ocpp.v201 import ChargePoint, call, call_result
from ocpp.v201.enums import Action

from ocpp_gateway.normalise import meter_values_v201
from ocpp_gateway.profiles import UNKNOWN, Capabilities, parse_units
from ocpp_gateway.station import StationBase, StationContext, check_id, now_utc

__all__ = ["StationV201"]


class StationV201(StationBase, ChargePoint):
    """One connected 2.0.1 charging station."""

    version = "2.0.1"
    known_actions = frozenset(a.value for a in Action)
    _call_module = call

    def __init__(self, station_id: str, connection: Any, ctx: StationContext) -> None:
        ChargePoint.__init__(self, station_id, connection, ctx.config.response_timeout)
        self.setup(ctx)

    async def _query_capabilities(self) -> Capabilities:
        wanted = [
            {"component": {"name": "SmartChargingCtrlr"}, "variable": {"name": name}}
            for name in ("RateUnit", "ProfileStackLevel")
        ]
        result = await self.request("GetVariables", {"get_variable_data": wanted})
        values = {
            r["variable"]["name"]: r.get("attribute_value")
            for r in result.get_variable_result
            if r.get("attribute_status") == "Accepted"
        }
        units, level = values.get("RateUnit"), values.get("ProfileStackLevel")
        return Capabilities(
            units=parse_units(units) if units else UNKNOWN.units,
            max_stack_level=int(level) if level else None,
        )

    @on(Action.boot_notification)
    async def on_boot(self, charging_station: dict[str, Any], reason: str, **_: Any):
        status, interval = self.boot_decision()
        await self.publish_status("BootNotification", status=status)
        return call_result.BootNotification(
            current_time=now_utc().isoformat(), interval=interval, status=status
        )

    @after(Action.boot_notification)
    async def after_boot(self, **_: Any) -> None:
        if self.booted:  # a Pending charger gets nothing until it is accepted
            await self.reconcile()

    @on(Action.heartbeat)
    async def on_heartbeat(self, **_: Any):
        return call_result.Heartbeat(current_time=now_utc().isoformat())

    @on(Action.status_notification)
    async def on_status(
        self, timestamp: str, connector_status: str, evse_id: int, connector_id: int, **_: Any
    ):
        check_id("evseId", evse_id)
        check_id("connectorId", connector_id)
        await self.publish_status(
            "StatusNotification", connector_id=evse_id, status=connector_status
        )
        return call_result.StatusNotification()

    @on(Action.authorize)
    async def on_authorize(self, id_token: dict[str, Any], **_: Any):
        return call_result.Authorize(id_token_info={"status": "Accepted"})

    @on(Action.transaction_event)
    async def on_transaction_event(
        self,
        event_type: str,
        timestamp: str,
        trigger_reason: str,
        seq_no: int,
        transaction_info: dict[str, Any],
        evse: dict[str, Any] | None = None,
        meter_value: list[dict[str, Any]] | None = None,
        id_token: dict[str, Any] | None = None,
        **_: Any,
    ):
        tx = transaction_info["transaction_id"]
        evse_id = evse["id"] if evse else self.connector_of(tx)
        if event_type != "Ended":
            self.sessions[evse_id] = tx
        check_id("evse.id", evse_id)
        records = meter_values_v201(
            self.id, evse_id, meter_value or (), session_id=tx, bounds=self.bounds()
        )
        if event_type == "Ended" and records:
            # the session is over; whatever was sampled at its end, the EVSE draws no more
            last = records[-1]
            if last.power_kw is None:
                records[-1] = msgspec.structs.replace(last, power_kw=0.0)
        await self.publish_durable(records)
        if event_type == "Ended" and self.sessions.get(evse_id) == tx:
            del self.sessions[evse_id]
        info = {"status": "Accepted"} if id_token else None
        return call_result.TransactionEvent(id_token_info=info)

    @on(Action.meter_values)
    async def on_meter_values(self, evse_id: int, meter_value: list[dict[str, Any]], **_: Any):
        check_id("evseId", evse_id)
        session = self.sessions.get(evse_id)
        records = meter_values_v201(
            self.id, evse_id, meter_value, session_id=session, bounds=self.bounds()
        )
        await self.publish_durable(records)
        return call_result.MeterValues()

    @on(Action.notify_report)
    async def on_notify_report(self, request_id: int, generated_at: str, seq_no: int, **_: Any):
        return call_result.NotifyReport()

    @on(Action.notify_event)
    async def on_notify_event(self, generated_at: str, seq_no: int, event_data: list, **_: Any):
        return call_result.NotifyEvent()

    @on(Action.security_event_notification)
    async def on_security_event(self, type: str, timestamp: str, **_: Any):
        return call_result.SecurityEventNotification()
