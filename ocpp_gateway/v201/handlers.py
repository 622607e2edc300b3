"""OCPP 2.0.1 CSMS handlers: one ``@on`` method per action a charging station sends.

Handlers take snake_case keyword arguments and return the ocpp library's typed
``call_result``; errors they raise carry their CallError code (see ``station.Station``).
"""

from __future__ import annotations

from typing import Any

from ocpp.v201 import call_result
from ocpp.v201.enums import Action

from ocpp_gateway.clock import now_utc
from ocpp_gateway.normalise import bound_time, parse_ts, zero_from
from ocpp_gateway.routing import after, on
from ocpp_gateway.station import Station, check_id
from ocpp_gateway.v201.normalise import meter_values
from pipeline.contracts import MeterValue

__all__ = ["StationV201"]


_TX_EVENT_REQUIRED = ("eventType", "timestamp", "triggerReason", "seqNo", "transactionInfo")


class StationV201(Station):
    """One connected 2.0.1 charging station."""

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
            "StatusNotification",
            connector_id=evse_id,
            evse_connector_id=connector_id,
            status=connector_status,
        )
        return call_result.StatusNotification()

    @on(Action.authorize)
    async def on_authorize(self, id_token: dict[str, Any], **_: Any):
        return call_result.Authorize(id_token_info={"status": "Accepted"})

    @on(Action.transaction_event, raw=True)
    async def on_transaction_event(self, payload: dict[str, Any]):
        # raw: the camelCase payload, not copied to snake_case (a hot call)
        missing = [k for k in _TX_EVENT_REQUIRED if k not in payload]
        if missing:  # only without validation: the schema requires them
            raise TypeError(f"TransactionEvent: missing {missing}")
        event_type: str = payload["eventType"]
        timestamp: str = payload["timestamp"]
        tx = payload["transactionInfo"]["transactionId"]
        evse: dict[str, Any] | None = payload.get("evse")
        meter_value: list[dict[str, Any]] | None = payload.get("meterValue")
        id_token = payload.get("idToken")
        info = {"status": "Accepted"} if id_token else None
        answer = call_result.TransactionEvent(id_token_info=info)
        known = self.sessions
        if known.is_closed(tx):
            self.ignore("closed_transaction", f"TransactionEvent {event_type}", tx)
            return answer
        evse_id = check_id("evse.id", evse["id"]) if evse else known.connector_of(tx)
        if evse_id is None:
            # Not known which EVSE it is on (this gateway has no ocpp.sessions record of
            # it): a guess would count another EVSE's load twice, so nothing is counted.
            if event_type == "Ended":
                await self.publish_durable((), known.end(tx))
            self.ignore("unknown_evse", f"TransactionEvent {event_type}", tx)
            return answer
        received = now_utc()
        records = meter_values(
            self.id, evse_id, meter_value or (), session_id=tx, received_ts=received,
            bounds=self.bounds(), camel=True,
        )  # fmt: skip
        if event_type == "Ended":
            end_ts, charger_ts = bound_time(
                parse_ts(timestamp), received, self.ctx.config.max_clock_skew_s
            )
            records = zero_from(records, end_ts)
            if not any(r.event_ts >= end_ts for r in records):
                records.append(
                    MeterValue(
                        station_id=self.id, connector_id=evse_id, session_id=tx,
                        power_kw=0.0, event_ts=end_ts, received_ts=received,
                        charger_ts=charger_ts, ocpp_version="2.0.1",
                    )
                )  # fmt: skip
            await self.publish_durable(records, known.end(tx))
        else:
            await self.publish_durable(records, known.start(evse_id, tx))
        return answer

    @on(Action.meter_values, raw=True)
    async def on_meter_values(self, payload: dict[str, Any]):
        # raw: the camelCase payload, not copied to snake_case (a hot call)
        try:
            evse_id: int = payload["evseId"]
            meter_value: list[dict[str, Any]] = payload["meterValue"]
        except KeyError as exc:  # only without validation: the schema requires both
            raise TypeError(f"MeterValues: missing {exc}") from None
        check_id("evseId", evse_id)
        session = self.sessions.on(evse_id)
        records = meter_values(
            self.id, evse_id, meter_value, session_id=session, bounds=self.bounds(),
            camel=True,
        )  # fmt: skip
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
