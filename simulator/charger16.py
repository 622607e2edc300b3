"""An OCPP 1.6J charger with one connector, on the ocpp library's ChargePoint.

Messages out: BootNotification, Heartbeat, StatusNotification, Authorize,
StartTransaction, StopTransaction, MeterValues (Power.Active.Import,
Energy.Active.Import.Register, Current.Import, Voltage, SoC, Power.Offered).
Commands in: SetChargingProfile, ClearChargingProfile, GetCompositeSchedule,
GetConfiguration, ChangeConfiguration, TriggerMessage.

A station built with ``reject_max_profile`` answers ChargePointMaxProfile with Rejected,
as many real chargers do, so the gateway's TxDefaultProfile fallback gets exercised.
"""

from __future__ import annotations

from typing import Any

from ocpp.routing import on
from ocpp.v16 import ChargePoint, call_result
from ocpp.v16.enums import Action

from simulator import profiles as prof
from simulator.charger import Driver
from simulator.errors import ProfileError

SUBPROTOCOL = "ocpp1.6"
_WRITABLE = frozenset({"MeterValueSampleInterval", "HeartbeatInterval"})


def _sv(value: float, measurand: str, unit: str, context: str) -> dict[str, str]:
    return {
        "value": f"{value:.1f}",
        "context": context,
        "measurand": measurand,
        "location": "Outlet",
        "unit": unit,
    }


class Charger16(Driver, ChargePoint):
    """One simulated 1.6 charge point (connector 1); see :class:`~simulator.charger.Driver`.

    Outgoing payloads are camelCase dicts, as on the wire (see ``Driver.send``).
    """

    version = "1.6"

    # -- messages out --------------------------------------------------------------------
    def boot_payload(self) -> dict[str, Any]:
        return {
            "chargePointModel": self.settings.model,
            "chargePointVendor": self.settings.vendor,
            "firmwareVersion": "sim-1",
        }

    async def report_state(self, connector_state: str) -> None:
        await self.send(
            "StatusNotification",
            {
                "connectorId": 1,
                "errorCode": "NoError",
                "status": connector_state,
                "timestamp": prof.format_time(self.clock()),
            },
        )

    async def begin_tx(self) -> bool:
        st = self.state
        s = st.session
        assert s is not None
        tag = f"EV{st.rng(self.settings.seed, 'tag').randrange(16**8):08X}"
        auth = await self.send("Authorize", {"idTag": tag})
        if auth is None or auth.get("idTagInfo", {}).get("status") != "Accepted":
            return False
        started = await self.send(
            "StartTransaction",
            {
                "connectorId": 1,
                "idTag": tag,
                "meterStart": int(st.meter.energy_wh),
                "timestamp": prof.format_time(self.clock()),
            },
        )
        if started is None or started.get("idTagInfo", {}).get("status") != "Accepted":
            return False
        s.tx_id = str(started["transactionId"])
        return True

    async def send_meter(self, trigger: str) -> None:
        st = self.state
        m = st.meter
        context = "Sample.Periodic" if trigger == "periodic" else "Trigger"
        values = [
            _sv(m.watts, "Power.Active.Import", "W", context),
            _sv(m.energy_wh, "Energy.Active.Import.Register", "Wh", context),
            _sv(m.amps, "Current.Import", "A", context),
            _sv(st.spec.voltage_v, "Voltage", "V", context),
            _sv(m.offered_w, "Power.Offered", "W", context),
        ]
        payload: dict[str, Any] = {"connectorId": 1}
        s = st.session
        if s is not None and s.started:
            values.append(_sv(s.soc, "SoC", "Percent", context))
            if s.tx_id and s.tx_id.lstrip("-").isdigit():
                payload["transactionId"] = int(s.tx_id)
        payload["meterValue"] = [
            {"timestamp": prof.format_time(self.clock()), "sampledValue": values}
        ]
        await self.send("MeterValues", payload)

    async def end_tx(self) -> None:
        s = self.state.session
        assert s is not None
        tx = int(s.tx_id) if s.tx_id and s.tx_id.lstrip("-").isdigit() else 0
        await self.send(
            "StopTransaction",
            {
                "meterStop": int(self.state.meter.energy_wh),
                "timestamp": prof.format_time(self.clock()),
                "transactionId": tx,
                "reason": "EVDisconnected",
            },
        )
        await self.report_state("Finishing")
        self.reported = "Finishing"

    # -- commands in ---------------------------------------------------------------------
    @on(Action.set_charging_profile)
    def on_set_charging_profile(
        self, connector_id: int, cs_charging_profiles: dict[str, Any], **_: Any
    ) -> call_result.SetChargingProfile:
        st = self.state
        purpose = cs_charging_profiles.get("charging_profile_purpose")
        action = "SetChargingProfile"
        if connector_id > 1 or (purpose == "ChargePointMaxProfile" and connector_id != 0):
            self.refused("Rejected", action, purpose)
            return call_result.SetChargingProfile(status="Rejected")
        if purpose == "ChargePointMaxProfile" and st.spec.reject_max_profile:
            self.refused("Rejected", action, purpose)
            return call_result.SetChargingProfile(status="Rejected")
        try:
            profile = prof.parse_16(cs_charging_profiles, connector_id, self.clock())
        except (ProfileError, KeyError, TypeError, ValueError):
            self.refused("Rejected", action, purpose)
            return call_result.SetChargingProfile(status="Rejected")
        s = st.session
        if profile.purpose == "Tx" and (
            s is None or not s.started or (profile.transaction_id not in (None, s.tx_id))
        ):
            self.refused("Rejected", action, purpose)
            return call_result.SetChargingProfile(status="Rejected")
        st.store.install(profile)
        self.installed(profile, "Accepted", action)
        return call_result.SetChargingProfile(status="Accepted")

    @on(Action.clear_charging_profile)
    def on_clear_charging_profile(
        self,
        id: int | None = None,  # the spec names it so
        connector_id: int | None = None,
        charging_profile_purpose: str | None = None,
        stack_level: int | None = None,
        **_: Any,
    ) -> call_result.ClearChargingProfile:
        purpose = None
        if charging_profile_purpose is not None:
            purpose = prof._PURPOSES_16.get(charging_profile_purpose, "?")
        removed = self.state.store.clear(
            profile_id=id,
            connector_id=connector_id,
            purpose=purpose,  # type: ignore[arg-type]
            stack_level=stack_level,
        )
        status = "Accepted" if removed else "Unknown"
        self.cleared(status)
        return call_result.ClearChargingProfile(status=status)

    @on(Action.get_composite_schedule)
    def on_get_composite_schedule(
        self, connector_id: int, duration: int, charging_rate_unit: str | None = None, **_: Any
    ) -> call_result.GetCompositeSchedule:
        if connector_id > 1:
            return call_result.GetCompositeSchedule(status="Rejected")
        unit = charging_rate_unit or self.state.spec.charging_rate_unit
        t0, periods = self.composite_periods(float(duration), unit)
        return call_result.GetCompositeSchedule(
            status="Accepted",
            connector_id=connector_id,
            schedule_start=prof.format_time(t0),
            charging_schedule={
                "duration": duration,
                "start_schedule": prof.format_time(t0),
                "charging_rate_unit": unit,
                "charging_schedule_period": periods,
            },
        )

    @on(Action.get_configuration)
    def on_get_configuration(
        self, key: list[str] | None = None, **_: Any
    ) -> call_result.GetConfiguration:
        known = {
            "MeterValueSampleInterval": f"{self.meter_interval:g}",
            "HeartbeatInterval": str(int(self.heartbeat_every)),
            "ChargeProfileMaxStackLevel": "10",
            "ChargingScheduleAllowedChargingRateUnit": "Current,Power",
            "ChargingScheduleMaxPeriods": "24",
            "MaxChargingProfilesInstalled": "10",
            "SupportedFeatureProfiles": "Core,SmartCharging,RemoteTrigger",
            "MeterValuesSampledData": "Power.Active.Import,Energy.Active.Import.Register,"
            "Current.Import,Voltage,SoC,Power.Offered",
            "NumberOfConnectors": "1",
        }
        wanted = key or list(known)
        return call_result.GetConfiguration(
            configuration_key=[
                {"key": k, "readonly": k not in _WRITABLE, "value": known[k]}
                for k in wanted
                if k in known
            ],
            unknown_key=[k for k in wanted if k not in known] or None,
        )

    @on(Action.change_configuration)
    def on_change_configuration(
        self, key: str, value: str, **_: Any
    ) -> call_result.ChangeConfiguration:
        if key == "MeterValueSampleInterval":
            ok = self.configure_interval(value)
            return call_result.ChangeConfiguration(status="Accepted" if ok else "Rejected")
        if key == "HeartbeatInterval":
            try:
                self.heartbeat_every = max(1.0, float(value))
            except ValueError:
                return call_result.ChangeConfiguration(status="Rejected")
            return call_result.ChangeConfiguration(status="Accepted")
        return call_result.ChangeConfiguration(status="NotSupported")

    @on(Action.trigger_message)
    def on_trigger_message(self, requested_message: str, **_: Any) -> call_result.TriggerMessage:
        if requested_message in ("MeterValues", "StatusNotification", "Heartbeat"):
            self.triggered.add(requested_message)
            self._wake.set()
            return call_result.TriggerMessage(status="Accepted")
        return call_result.TriggerMessage(status="NotImplemented")
