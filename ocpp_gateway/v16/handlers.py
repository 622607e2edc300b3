"""OCPP 1.6J central-system handlers: one ``@on`` method per action a charger sends.

Handlers take snake_case keyword arguments and return the ocpp library's typed
``call_result``; errors they raise carry their CallError code (see ``station.Station``).
"""

from __future__ import annotations

import itertools
import time
from typing import Any

from ocpp.v16 import call_result
from ocpp.v16.enums import Action

from ocpp_gateway.clock import now_utc
from ocpp_gateway.normalise import bound_time, parse_ts, zero_from
from ocpp_gateway.routing import after, on
from ocpp_gateway.station import Station, check_id
from ocpp_gateway.v16.normalise import meter_values
from pipeline.contracts import MeterValue

__all__ = ["StationV16"]

# Transaction ids must be unique per charger and fit a 32-bit int; seeding from the clock
# keeps them increasing across gateway restarts, and worker i of n taking only ids equal
# to i mod n keeps the workers sharing a port apart (a charger may move between them).
_TX_SEQ = itertools.count(int(time.time() * 10) % 1_000_000_000 + 1)


def next_tx_id(worker: int = 0, workers: int = 1) -> int:
    return (next(_TX_SEQ) * workers + worker) % 2_147_483_647 or workers


class StationV16(Station):
    """One connected 1.6 charger."""

    @on(Action.boot_notification)
    async def on_boot(self, charge_point_vendor: str, charge_point_model: str, **_: Any):
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
    async def on_status(self, connector_id: int, error_code: str, status: str, **_: Any):
        check_id("connectorId", connector_id)
        await self.publish_status(
            "StatusNotification", connector_id=connector_id, status=status, error_code=error_code
        )
        return call_result.StatusNotification()

    @on(Action.authorize)
    async def on_authorize(self, id_tag: str, **_: Any):
        # Authorisation of drivers is the operator's business system's job, not ours.
        return call_result.Authorize(id_tag_info={"status": "Accepted"})

    @on(Action.start_transaction)
    async def on_start_transaction(
        self, connector_id: int, id_tag: str, meter_start: int, timestamp: str, **_: Any
    ):
        check_id("connectorId", connector_id)
        tx = next_tx_id(self.ctx.config.worker_index, self.ctx.config.workers)
        session = str(tx)
        received = now_utc()
        event_ts, charger_ts = bound_time(
            parse_ts(timestamp), received, self.ctx.config.max_clock_skew_s
        )
        record = MeterValue(
            station_id=self.id,
            connector_id=connector_id,
            session_id=session,
            energy_kwh=meter_start / 1000.0,
            event_ts=event_ts,
            received_ts=received,
            charger_ts=charger_ts,
            ocpp_version="1.6",
        )
        await self.publish_durable([record], self.sessions.start(connector_id, session))
        return call_result.StartTransaction(transaction_id=tx, id_tag_info={"status": "Accepted"})

    @on(Action.stop_transaction)
    async def on_stop_transaction(
        self,
        meter_stop: int,
        timestamp: str,
        transaction_id: int,
        transaction_data: list[dict[str, Any]] | None = None,
        **_: Any,
    ):
        session = str(transaction_id)
        answer = call_result.StopTransaction(id_tag_info={"status": "Accepted"})
        known = self.sessions
        if known.is_closed(session):
            self.ignore("closed_transaction", "StopTransaction", session)
            return answer
        connector = known.connector_of(session)
        if connector is None:
            # Not known which connector it ran on (no ocpp.sessions record of it): a guess
            # would count another connector twice; remember it ended, count nothing.
            await self.publish_durable((), known.end(session))
            self.ignore("unknown_evse", "StopTransaction", session)
            return answer
        received = now_utc()
        records = meter_values(
            self.id,
            connector,
            transaction_data or (),
            session_id=session,
            received_ts=received,
            bounds=self.bounds(),
        )
        event_ts, charger_ts = bound_time(
            parse_ts(timestamp), received, self.ctx.config.max_clock_skew_s
        )
        records = zero_from(records, event_ts)
        records.append(
            MeterValue(
                station_id=self.id,
                connector_id=connector,
                session_id=session,
                energy_kwh=meter_stop / 1000.0,
                power_kw=0.0,  # the session ended: the connector draws nothing any more
                event_ts=event_ts,
                received_ts=received,
                charger_ts=charger_ts,
                ocpp_version="1.6",
            )
        )
        await self.publish_durable(records, known.end(session))
        return answer

    @on(Action.meter_values, raw=True)
    async def on_meter_values(self, payload: dict[str, Any]):
        # raw: the camelCase payload, not copied to snake_case (the hottest call)
        try:
            connector_id: int = payload["connectorId"]
            meter_value: list[dict[str, Any]] = payload["meterValue"]
        except KeyError as exc:  # only without validation: the schema requires both
            raise TypeError(f"MeterValues: missing {exc}") from None
        transaction_id: int | None = payload.get("transactionId")
        check_id("connectorId", connector_id)
        known = self.sessions
        changed = None
        if transaction_id is None:
            session = known.on(connector_id)
        else:
            session = str(transaction_id)
            if known.is_closed(session):
                # a sample queued before the stop and sent after it: the stop's 0 kW stands
                self.ignore("closed_transaction", "MeterValues", session)
                return call_result.MeterValues()
            if connector_id != 0:  # learnt again after a restart, for its StopTransaction
                changed = known.start(connector_id, session)
        records = meter_values(
            self.id, connector_id, meter_value, session_id=session, bounds=self.bounds(),
            camel=True,
        )  # fmt: skip
        await self.publish_durable(records, changed)
        return call_result.MeterValues()

    @on(Action.data_transfer)
    async def on_data_transfer(self, vendor_id: str, **_: Any):
        return call_result.DataTransfer(status="UnknownVendorId")

    @on(Action.diagnostics_status_notification)
    async def on_diagnostics_status(self, status: str, **_: Any):
        return call_result.DiagnosticsStatusNotification()

    @on(Action.firmware_status_notification)
    async def on_firmware_status(self, status: str, **_: Any):
        return call_result.FirmwareStatusNotification()
