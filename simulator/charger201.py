"""An OCPP 2.0.1 charging station with one EVSE (id 1, connector 1), on the ocpp library.

Messages out: BootNotification, Heartbeat, StatusNotification, Authorize,
TransactionEvent (Started / Updated / Ended, carrying the samples while a transaction
runs), MeterValues (samples outside a transaction). Commands in: SetChargingProfile,
ClearChargingProfile, GetCompositeSchedule, GetVariables, TriggerMessage.

2.0.1 reports connector occupancy in StatusNotification (Available / Occupied) and the
charging state in TransactionEvent (Charging, SuspendedEVSE, ...), so ``report_state``
maps the 1.6-style state the driver tracks onto those two.
"""

from __future__ import annotations

from typing import Any

from ocpp.routing import on
from ocpp.v201 import ChargePoint, call_result
from ocpp.v201.enums import Action

from simulator import profiles as prof
from simulator.charger import Driver
from simulator.errors import ProfileError

SUBPROTOCOL = "ocpp2.0.1"

_CHARGING_STATE = {
    "Preparing": "EVConnected",
    "Charging": "Charging",
    "SuspendedEVSE": "SuspendedEVSE",
    "SuspendedEV": "SuspendedEV",
    "Finishing": "EVConnected",
}


def _sv(value: float, measurand: str, unit: str, context: str) -> dict[str, Any]:
    return {
        "value": round(value, 1),
        "context": context,
        "measurand": measurand,
        "location": "Outlet",
        "unitOfMeasure": {"unit": unit},
    }


class Charger201(Driver, ChargePoint):
    """One simulated 2.0.1 charging station; see :class:`~simulator.charger.Driver`.

    Outgoing payloads are camelCase dicts, as on the wire (see ``Driver.send``).
    """

    version = "2.0.1"

    def _token(self) -> dict[str, str]:
        rng = self.state.rng(self.settings.seed, "tag")
        return {"idToken": f"EV{rng.randrange(16**8):08X}", "type": "ISO14443"}

    # -- messages out --------------------------------------------------------------------
    def boot_payload(self) -> dict[str, Any]:
        return {
            "chargingStation": {
                "vendorName": self.settings.vendor,
                "model": self.settings.model,
                "firmwareVersion": "sim-1",
            },
            "reason": "PowerUp",
        }

    async def report_state(self, connector_state: str) -> None:
        occupied = "Available" if connector_state == "Available" else "Occupied"
        if self.reported_occupancy != occupied:
            self.reported_occupancy = occupied
            await self.send(
                "StatusNotification",
                {
                    "timestamp": prof.format_time(self.clock()),
                    "connectorStatus": occupied,
                    "evseId": 1,
                    "connectorId": 1,
                },
            )
        s = self.state.session
        if s is not None and s.started and connector_state in ("Charging", "SuspendedEVSE"):
            await self._event("Updated", "ChargingStateChanged", connector_state)

    async def begin_tx(self) -> bool:
        s = self.state.session
        assert s is not None
        token = self._token()
        auth = await self.send("Authorize", {"idToken": token})
        if auth is None or auth.get("idTokenInfo", {}).get("status") != "Accepted":
            return False
        s.tx_id = s.session_id[-36:]
        self.state.seq_no = 0
        result = await self._event("Started", "Authorized", "Charging", id_token=token)
        if result is None:
            s.tx_id = None
            return False
        info = result.get("idTokenInfo") or {}
        return info.get("status", "Accepted") == "Accepted"

    async def send_meter(self, trigger: str) -> None:
        s = self.state.session
        if s is not None and s.started:
            reason = "MeterValuePeriodic" if trigger == "periodic" else "ChargingRateChanged"
            await self._event("Updated", reason, self.connector_state())
            return
        await self.send(
            "MeterValues", {"evseId": 1, "meterValue": [self._sample("Sample.Periodic")]}
        )

    async def end_tx(self) -> None:
        await self._event("Ended", "EVDeparted", "EVConnected", stopped_reason="EVDisconnected")
        await self.report_state("Available")

    def _sample(self, context: str) -> dict[str, Any]:
        st = self.state
        m = st.meter
        values = [
            _sv(m.watts, "Power.Active.Import", "W", context),
            _sv(m.energy_wh, "Energy.Active.Import.Register", "Wh", context),
            _sv(m.amps, "Current.Import", "A", context),
            _sv(st.spec.voltage_v, "Voltage", "V", context),
            _sv(m.offered_w, "Power.Offered", "W", context),
        ]
        s = st.session
        if s is not None and s.started:
            values.append(_sv(s.soc, "SoC", "Percent", context))
        return {"timestamp": prof.format_time(self.clock()), "sampledValue": values}

    async def _event(
        self,
        event_type: str,
        trigger: str,
        connector_state: str,
        *,
        id_token: dict[str, str] | None = None,
        stopped_reason: str | None = None,
    ) -> dict[str, Any] | None:
        st = self.state
        s = st.session
        assert s is not None and s.tx_id is not None
        context = {
            "Started": "Transaction.Begin",
            "Ended": "Transaction.End",
        }.get(event_type, "Sample.Periodic" if trigger == "MeterValuePeriodic" else "Trigger")
        info: dict[str, Any] = {
            "transactionId": s.tx_id,
            "chargingState": _CHARGING_STATE.get(connector_state, "EVConnected"),
        }
        if stopped_reason:
            info["stoppedReason"] = stopped_reason
        seq = st.seq_no
        st.seq_no += 1
        payload: dict[str, Any] = {
            "eventType": event_type,
            "timestamp": prof.format_time(self.clock()),
            "triggerReason": trigger,
            "seqNo": seq,
            "transactionInfo": info,
            "meterValue": [self._sample(context)],
        }
        if event_type == "Started":
            payload["evse"] = {"id": 1, "connectorId": 1}
        if id_token is not None:
            payload["idToken"] = id_token
        return await self.send("TransactionEvent", payload)

    # -- commands in ---------------------------------------------------------------------
    @on(Action.set_charging_profile)
    def on_set_charging_profile(
        self, evse_id: int, charging_profile: dict[str, Any], **_: Any
    ) -> call_result.SetChargingProfile:
        st = self.state
        purpose = charging_profile.get("charging_profile_purpose")
        action = "SetChargingProfile"

        def reject(reason: str) -> call_result.SetChargingProfile:
            self.refused("Rejected", action, purpose)
            return call_result.SetChargingProfile(
                status="Rejected", status_info={"reason_code": reason}
            )

        if evse_id > 1:
            return reject("UnknownEVSE")
        if purpose == "ChargingStationMaxProfile" and evse_id != 0:
            return reject("InvalidValue")
        if purpose == "ChargingStationMaxProfile" and st.spec.reject_max_profile:
            return reject("UnsupportedPurpose")
        try:
            profile = prof.parse_201(charging_profile, evse_id, self.clock())
        except (ProfileError, KeyError, TypeError, ValueError):
            return reject("InvalidSchedule")
        s = st.session
        if profile.purpose == "Tx" and (
            s is None or not s.started or profile.transaction_id != s.tx_id
        ):
            return reject("TxNotFound")
        st.store.install(profile)
        self.installed(profile, "Accepted", action)
        return call_result.SetChargingProfile(status="Accepted")

    @on(Action.clear_charging_profile)
    def on_clear_charging_profile(
        self,
        charging_profile_id: int | None = None,
        charging_profile_criteria: dict[str, Any] | None = None,
        **_: Any,
    ) -> call_result.ClearChargingProfile:
        c = charging_profile_criteria or {}
        purpose = None
        if c.get("charging_profile_purpose") is not None:
            purpose = prof._PURPOSES_201.get(c["charging_profile_purpose"], "?")
        removed = self.state.store.clear(
            profile_id=charging_profile_id,
            connector_id=c.get("evse_id"),
            purpose=purpose,  # type: ignore[arg-type]
            stack_level=c.get("stack_level"),
        )
        status = "Accepted" if removed else "Unknown"
        self.cleared(status)
        return call_result.ClearChargingProfile(status=status)

    @on(Action.get_composite_schedule)
    def on_get_composite_schedule(
        self, duration: int, evse_id: int, charging_rate_unit: str | None = None, **_: Any
    ) -> call_result.GetCompositeSchedule:
        if evse_id > 1:
            return call_result.GetCompositeSchedule(
                status="Rejected", status_info={"reason_code": "UnknownEVSE"}
            )
        unit = charging_rate_unit or self.state.spec.charging_rate_unit
        t0, periods = self.composite_periods(float(duration), unit)
        return call_result.GetCompositeSchedule(
            status="Accepted",
            schedule={
                "evse_id": evse_id,
                "duration": duration,
                "schedule_start": prof.format_time(t0),
                "charging_rate_unit": unit,
                "charging_schedule_period": periods,
            },
        )

    @on(Action.get_variables)
    def on_get_variables(
        self, get_variable_data: list[dict[str, Any]], **_: Any
    ) -> call_result.GetVariables:
        known = {
            ("SampledDataCtrlr", "TxUpdatedInterval"): f"{self.meter_interval:g}",
            ("SmartChargingCtrlr", "Enabled"): "true",
            ("SmartChargingCtrlr", "RateUnit"): "A,W",
            ("SmartChargingCtrlr", "ProfileStackLevel"): "10",
            ("SmartChargingCtrlr", "PeriodsPerSchedule"): "24",
            ("OCPPCommCtrlr", "HeartbeatInterval"): str(int(self.heartbeat_every)),
        }
        out = []
        for item in get_variable_data:
            component = item.get("component", {})
            variable = item.get("variable", {})
            value = known.get((component.get("name"), variable.get("name")))
            entry: dict[str, Any] = {
                "attribute_status": "Accepted" if value is not None else "UnknownVariable",
                "component": component,
                "variable": variable,
            }
            if value is not None:
                entry["attribute_value"] = value
            out.append(entry)
        return call_result.GetVariables(get_variable_result=out)

    @on(Action.set_variables)
    def on_set_variables(
        self, set_variable_data: list[dict[str, Any]], **_: Any
    ) -> call_result.SetVariables:
        out = []
        for item in set_variable_data:
            component = item.get("component", {})
            variable = item.get("variable", {})
            name = (component.get("name"), variable.get("name"))
            value = str(item.get("attribute_value", ""))
            if name == ("SampledDataCtrlr", "TxUpdatedInterval"):
                status = "Accepted" if self.configure_interval(value) else "Rejected"
            elif name == ("OCPPCommCtrlr", "HeartbeatInterval"):
                try:
                    self.heartbeat_every = max(1.0, float(value))
                    status = "Accepted"
                except ValueError:
                    status = "Rejected"
            else:
                status = "UnknownVariable"
            out.append({"attribute_status": status, "component": component, "variable": variable})
        return call_result.SetVariables(set_variable_result=out)

    @on(Action.trigger_message)
    def on_trigger_message(self, requested_message: str, **_: Any) -> call_result.TriggerMessage:
        if requested_message in (
            "MeterValues",
            "TransactionEvent",
            "StatusNotification",
            "Heartbeat",
        ):
            self.triggered.add(requested_message)
            self._wake.set()
            return call_result.TriggerMessage(status="Accepted")
        return call_result.TriggerMessage(status="NotImplemented")
