"""Command delivery against real chargers: apply, fallback, clear, hysteresis, reconcile."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from ocpp.routing import on
from ocpp.v16 import ChargePoint as CP16
from ocpp.v16 import call
from ocpp.v16.enums import Action as Action16
from ocpp.v201 import call as call201
from ocpp.v201.enums import Action as Action201

from ocpp_gateway import Gateway, GatewayConfig, profiles
from pipeline import topics
from pipeline.bus import Bus
from pipeline.contracts import CommandResult, SetChargingProfileCommand, StationZone, decode, encode
from tests.ocpp_gateway.chargers import Charger16, Charger201, charger, wait_records

END = datetime.now(UTC) + timedelta(hours=2)


async def command(
    bus: Bus,
    station: str,
    kw: float,
    *,
    priority: int = 2,
    signal: str = "sig",
    end=END,
    shed: float = 0.0,
) -> None:
    cmd = SetChargingProfileCommand(
        station_id=station,
        target_power_kw=kw,
        station_shed_kw=shed,
        signal_id=signal,
        priority=priority,
        dr_end_ts=end,
        command_ts=datetime.now(UTC),
    )
    await bus.publish(topics.SET_CHARGING_PROFILE, station, encode(cmd))


async def results(bus: Bus, station: str, count: int, timeout: float = 10) -> list[tuple[str, str]]:
    records = await wait_records(
        bus, topics.COMMAND_RESULTS, key=station, count=count, timeout=timeout
    )
    return [(r.action, r.status) for r in (decode(CommandResult, x.value) for x in records)]


async def boot16(cp) -> None:
    await cp.call(call.BootNotification(charge_point_vendor="V", charge_point_model="M"))


async def settle(gw: Gateway, station: str, target_kw: float | None = None) -> None:
    """Wait until the reader folded the latest record in and the station's worker is idle.

    ``target_kw``: the latest published target (None: a tombstone was published last).
    """
    async with asyncio.timeout(10):
        while station not in gw.commands.desired or (
            (gw.commands.desired[station] is None) != (target_kw is None)
            or (target_kw is not None
                and gw.commands.desired[station].target_power_kw != target_kw)  # type: ignore[union-attr]
        ):  # fmt: skip
            await asyncio.sleep(0.02)
        while gw.commands._workers.get(station) or station in gw.commands._pending:
            await asyncio.sleep(0.02)


def limit16(profile: dict) -> float:
    return profile["charging_schedule"]["charging_schedule_period"][0]["limit"]


@pytest.fixture
async def hyst(bus: Bus, gateway_config: GatewayConfig) -> AsyncIterator[Gateway]:
    gw = Gateway(
        bus,
        replace(gateway_config, threshold_kw=1.0, min_interval_s=3600, change_interval_s=0),
    )
    await gw.start()
    yield gw
    await gw.stop()


async def test_v201_apply_in_amps_from_zone(gateway: Gateway, bus: Bus) -> None:
    zone = StationZone(
        station_id="CS-AMP", zone_id="z", max_station_kw=22, contract_max_kw=22,
        charging_rate_unit="A", phases=3, voltage_v=230,
    )  # fmt: skip
    await bus.publish(topics.STATION_ZONES, "CS-AMP", encode(zone))
    async with charger(gateway.port, "CS-AMP", "2.0.1") as cs:
        await cs.call(call201.BootNotification(charging_station={"model": "M", "vendor_name": "V"},
                                               reason="PowerUp"))  # fmt: skip
        await asyncio.sleep(0.3)  # let the zone record reach the registry
        await command(bus, "CS-AMP", 11.0)
        profile = await asyncio.wait_for(cs.profiles.get(), 10)
        assert await results(bus, "CS-AMP", 1) == [("SetChargingProfile", "Accepted")]
    assert profile["evse_id"] == 0
    assert profile["charging_profile_purpose"] == "ChargingStationMaxProfile"
    (schedule,) = profile["charging_schedule"]
    assert schedule["charging_rate_unit"] == "A"
    assert schedule["charging_schedule_period"][0]["limit"] == 15.9


async def test_fallback_to_tx_default_then_clear_on_tombstone(gateway: Gateway, bus: Bus) -> None:
    async with charger(gateway.port, "CP-FB") as cp:
        cp.answers["ChargePointMaxProfile"] = "Rejected"
        await boot16(cp)
        await command(bus, "CP-FB", 7.0)
        first = await asyncio.wait_for(cp.profiles.get(), 10)
        second = await asyncio.wait_for(cp.profiles.get(), 10)
        assert first["charging_profile_purpose"] == "ChargePointMaxProfile"
        assert second["charging_profile_purpose"] == "TxDefaultProfile"
        assert second["connector_id"] == 0 and limit16(second) == 7000.0
        # what worked is remembered: the next change goes straight to TxDefaultProfile
        await command(bus, "CP-FB", 5.0)
        third = await asyncio.wait_for(cp.profiles.get(), 10)
        assert third["charging_profile_purpose"] == "TxDefaultProfile"
        await bus.publish(topics.SET_CHARGING_PROFILE, "CP-FB", None)
        cleared = await asyncio.wait_for(cp.clears.get(), 10)
        assert cleared == {"id": profiles.profile_id("CP-FB")}
        # (still connected: the charger's answer to the clear must reach the gateway)
        assert await results(bus, "CP-FB", 4) == [
            ("SetChargingProfile", "Rejected"),
            ("SetChargingProfile", "Accepted"),
            ("SetChargingProfile", "Accepted"),
            ("ClearChargingProfile", "Accepted"),
        ]


async def test_deadband_new_end_and_new_priority(hyst: Gateway, bus: Bus) -> None:
    async with charger(hyst.port, "CP-HY") as cp:
        await boot16(cp)
        await command(bus, "CP-HY", 11.0)
        assert limit16(await asyncio.wait_for(cp.profiles.get(), 10)) == 11000.0
        # Within max(1 kW, 5 % of 11.9 = 0.6 kW) = 1 kW: not a new profile, emergencies
        # and fields that are not in the profile (station_shed_kw) included.
        await command(bus, "CP-HY", 11.9, shed=3.0)
        await settle(hyst, "CP-HY", 11.9)
        assert cp.profiles.empty()
        await command(bus, "CP-HY", 12.5)  # moved 1.5 kW from what was sent
        assert limit16(await asyncio.wait_for(cp.profiles.get(), 10)) == 12500.0
        await command(bus, "CP-HY", 12.6, priority=1)  # a new stack level: a new profile
        assert limit16(await asyncio.wait_for(cp.profiles.get(), 10)) == 12600.0
        await command(bus, "CP-HY", 12.7, priority=1)  # emergency within the deadband
        await settle(hyst, "CP-HY", 12.7)
        assert cp.profiles.empty()
        await command(bus, "CP-HY", 12.7, priority=1, end=END + timedelta(hours=1))  # new end
        profile = await asyncio.wait_for(cp.profiles.get(), 10)
        assert limit16(profile) == 12700.0 and profile["valid_to"].startswith(
            (END + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
        )


async def test_raises_wait_for_the_change_interval_cuts_do_not(
    bus: Bus, gateway_config: GatewayConfig
) -> None:
    gw = Gateway(bus, replace(gateway_config, min_interval_s=3600, change_interval_s=1.5))
    await gw.start()
    try:
        async with charger(gw.port, "CP-CI") as cp:
            await boot16(cp)
            await command(bus, "CP-CI", 10.0)
            assert limit16(await asyncio.wait_for(cp.profiles.get(), 10)) == 10000.0
            await command(bus, "CP-CI", 6.0)  # a cut goes out at once (the cap needs it)
            assert limit16(await asyncio.wait_for(cp.profiles.get(), 10)) == 6000.0
            await command(bus, "CP-CI", 9.0)  # a raise right after: held back ...
            await settle(gw, "CP-CI", 9.0)
            assert cp.profiles.empty()
            # ... and sent by itself once the interval has passed, with no new record.
            assert limit16(await asyncio.wait_for(cp.profiles.get(), 10)) == 9000.0
    finally:
        await gw.stop()


async def test_min_interval_zero_resends_every_change(bus: Bus, gateway_config) -> None:
    gw = Gateway(bus, replace(gateway_config, threshold_kw=5.0, min_interval_s=0))
    await gw.start()
    try:
        async with charger(gw.port, "CP-MI") as cp:
            await boot16(cp)
            await command(bus, "CP-MI", 11.0)
            await asyncio.wait_for(cp.profiles.get(), 10)
            await command(bus, "CP-MI", 11.1)
            assert limit16(await asyncio.wait_for(cp.profiles.get(), 10)) == 11100.0
    finally:
        await gw.stop()


async def test_offline_then_reconcile_on_reconnect(gateway: Gateway, bus: Bus) -> None:
    await command(bus, "CP-OFF", 9.0, signal="sig-off")
    assert await results(bus, "CP-OFF", 1) == [("SetChargingProfile", "Offline")]
    async with charger(gateway.port, "CP-OFF") as cp:
        await boot16(cp)
        assert limit16(await asyncio.wait_for(cp.profiles.get(), 10)) == 9000.0
    # ended while the charger was away: cleared when it is back
    await bus.publish(topics.SET_CHARGING_PROFILE, "CP-OFF", None)
    await settle(gateway, "CP-OFF")
    async with charger(gateway.port, "CP-OFF") as cp:
        await cp.call(call.Heartbeat())  # a reconnect without BootNotification
        assert await asyncio.wait_for(cp.clears.get(), 10) == {"id": profiles.profile_id("CP-OFF")}


async def test_desired_state_rebuilt_at_start(bus: Bus, gateway_config: GatewayConfig) -> None:
    await command(bus, "CP-EARLY", 4.2)
    gw = Gateway(bus, gateway_config)
    await gw.start()
    try:
        assert gw.commands.desired["CP-EARLY"].target_power_kw == 4.2  # type: ignore[union-attr]
        async with charger(gw.port, "CP-EARLY") as cp:
            await boot16(cp)
            assert limit16(await asyncio.wait_for(cp.profiles.get(), 10)) == 4200.0
    finally:
        await gw.stop()


class Silent16(CP16):
    """A 1.6 charger with no smart-charging handlers: the library answers NotImplemented."""


class Slow16(Charger16):
    """Never answers in time."""

    @on(Action16.set_charging_profile)
    async def on_set_profile(self, **kwargs):  # type: ignore[override]
        await asyncio.sleep(30)


async def test_answers_are_counted_in_one_info_line_not_one_per_charger(
    bus: Bus, gateway_config: GatewayConfig, caplog: pytest.LogCaptureFixture
) -> None:
    """At INFO the log says what the commands came to once per interval, naming the
    stations of what was not Accepted; the per-charger line is DEBUG."""
    gw = Gateway(bus, replace(gateway_config, outcome_log_s=0.3))
    await gw.start()
    caplog.set_level(logging.INFO, logger="ocpp_gateway.commands")
    try:
        async with charger(gw.port, "CP-L1") as a, charger(gw.port, "CP-L2") as b:
            a.answers["ChargePointMaxProfile"] = "Rejected"  # then TxDefaultProfile
            await boot16(a)
            await boot16(b)
            await command(bus, "CP-L1", 7.0)
            await command(bus, "CP-L2", 7.0)
            await results(bus, "CP-L1", 2)
            await results(bus, "CP-L2", 1)
            async with asyncio.timeout(5):
                while not [r for r in caplog.records if "commands answered" in r.getMessage()]:
                    await asyncio.sleep(0.05)
    finally:
        await gw.stop()
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    counted = [line for line in lines if "commands answered" in line]
    assert counted[0].endswith(
        "SetChargingProfile Accepted 2; SetChargingProfile Rejected 1 (CP-L1)"
    ), counted
    assert not [line for line in lines if "->" in line]  # no line per answer at INFO
    assert len(counted) == 1  # nothing more to say afterwards, nor at stop


async def test_not_supported_and_timeout(bus: Bus, gateway_config: GatewayConfig) -> None:
    gw = Gateway(bus, replace(gateway_config, response_timeout=0.5))
    await gw.start()
    try:
        async with charger(gw.port, "CP-NS", cls=Silent16) as cp:
            await boot16(cp)
            await command(bus, "CP-NS", 3.0)
            assert await results(bus, "CP-NS", 2) == [("SetChargingProfile", "NotSupported")] * 2
        async with charger(gw.port, "CP-TO", cls=Slow16) as cp:
            await boot16(cp)
            await command(bus, "CP-TO", 3.0)
            assert await results(bus, "CP-TO", 1) == [("SetChargingProfile", "Timeout")]
    finally:
        await gw.stop()


class Vanishing16(Charger16):
    """Drops the connection instead of answering SetChargingProfile."""

    @on(Action16.set_charging_profile)
    async def on_set_profile(self, **kwargs):  # type: ignore[override]
        await self._connection.close()


async def test_disconnect_mid_call_is_offline_not_timeout(gateway: Gateway, bus: Bus) -> None:
    assert gateway.config.response_timeout >= 30  # a Timeout could not arrive within 10 s
    async with charger(gateway.port, "CP-GONE", cls=Vanishing16) as cp:
        await boot16(cp)
        await command(bus, "CP-GONE", 3.0)
        assert await results(bus, "CP-GONE", 1, timeout=10) == [("SetChargingProfile", "Offline")]


async def _idle(gw: Gateway) -> None:
    async with asyncio.timeout(10):
        while gw.commands._spawned:
            await asyncio.sleep(0.02)


async def test_workers_report_offline_only_what_no_worker_holds(
    bus: Bus, gateway_config: GatewayConfig
) -> None:
    """Of two workers, w0 reports ``Offline`` for a station neither holds, and not for
    one connected to w1 (told by w1's ``Connected`` on the status topic)."""
    w0 = Gateway(bus, replace(gateway_config, workers=2, worker_index=0, offline_grace_s=0.2))
    w1 = Gateway(bus, replace(gateway_config, workers=2, worker_index=1, report_offline=False))
    await w0.start()
    await w1.start()
    try:
        async with charger(w1.port, "CP-AT-W1") as cp:
            await boot16(cp)
            await command(bus, "CP-AT-W1", 6.0)  # at once: w0 may not have read w1's word
            assert limit16(await asyncio.wait_for(cp.profiles.get(), 10)) == 6000.0
            await settle(w1, "CP-AT-W1", 6.0)
            await settle(w0, "CP-AT-W1", 6.0)
            await _idle(w0)
            assert await results(bus, "CP-AT-W1", 1) == [("SetChargingProfile", "Accepted")]
            await command(bus, "CP-NOWHERE", 5.0)
            assert await results(bus, "CP-NOWHERE", 1) == [("SetChargingProfile", "Offline")]
        async with asyncio.timeout(10):  # w1's Disconnected reaches w0
            while w0.presence is not None and w0.presence.held_elsewhere("CP-AT-W1"):
                await asyncio.sleep(0.02)
        await command(bus, "CP-AT-W1", 4.0)
        assert await results(bus, "CP-AT-W1", 2) == [
            ("SetChargingProfile", "Accepted"),
            ("SetChargingProfile", "Offline"),
        ]
        await _idle(w0)
        await _idle(w1)
        # one answer per command: w1 said nothing of what it does not hold
        assert len(await results(bus, "CP-NOWHERE", 1)) == 1
        assert len(await results(bus, "CP-AT-W1", 2)) == 2
    finally:
        await w1.stop()
        await w0.stop()


async def test_two_instances_only_the_holder_applies(bus: Bus, gateway_config) -> None:
    config = replace(gateway_config, report_offline=False)
    a, b = Gateway(bus, config), Gateway(bus, config)
    await a.start()
    await b.start()
    try:
        async with charger(a.port, "CP-MULTI") as cp:
            await boot16(cp)
            await command(bus, "CP-MULTI", 6.0)
            assert limit16(await asyncio.wait_for(cp.profiles.get(), 10)) == 6000.0
            assert await results(bus, "CP-MULTI", 1) == [("SetChargingProfile", "Accepted")]
            await settle(b, "CP-MULTI", 6.0)
            await settle(a, "CP-MULTI", 6.0)
        # both rebuilt the same desired state; only the instance holding the socket acted
        assert b.commands.desired["CP-MULTI"] == a.commands.desired["CP-MULTI"]
        records = await wait_records(bus, topics.COMMAND_RESULTS, key="CP-MULTI", count=1)
        assert len(records) == 1
        assert cp.profiles.empty()
    finally:
        await a.stop()
        await b.stop()


class CurrentOnly16(Charger16):
    """A 1.6 charger that takes only Current schedules and one stack level."""

    @on(Action16.get_configuration)
    async def on_get_configuration(self, key: list[str] | None = None, **_):
        from ocpp.v16 import call_result as result16

        return result16.GetConfiguration(
            configuration_key=[
                {"key": "ChargingScheduleAllowedChargingRateUnit", "readonly": True,
                 "value": "Current"},
                {"key": "ChargeProfileMaxStackLevel", "readonly": True, "value": "1"},
            ]
        )  # fmt: skip


class PowerOnly201(Charger201):
    """A 2.0.1 station whose SmartChargingCtrlr.RateUnit is W only."""

    @on(Action201.get_variables)
    async def on_get_variables(self, get_variable_data: list[dict], **_):
        from ocpp.v201 import call_result as result201

        answers = {"RateUnit": "W", "ProfileStackLevel": "5"}
        return result201.GetVariables(
            get_variable_result=[
                {"attribute_status": "Accepted", "attribute_value": answers[d["variable"]["name"]],
                 "component": d["component"], "variable": d["variable"]}
                for d in get_variable_data
            ]
        )  # fmt: skip


async def test_charger_capabilities_choose_unit_and_cap_stack(gateway: Gateway, bus: Bus) -> None:
    async with charger(gateway.port, "CP-CUR", cls=CurrentOnly16) as cp:
        await boot16(cp)
        await command(bus, "CP-CUR", 11.0, priority=1)  # no zone: W by default, but A only
        profile = await asyncio.wait_for(cp.profiles.get(), 10)
        assert profile["stack_level"] == 1  # priority 1 wants 3; the charger allows 1
        assert profile["charging_schedule"]["charging_rate_unit"] == "A"
        assert float(limit16(profile)) == 15.9  # 11 kW over 3 x 230 V
    zone = StationZone(
        station_id="CS-POW", zone_id="z", max_station_kw=22, contract_max_kw=22,
        charging_rate_unit="A",
    )  # fmt: skip
    await bus.publish(topics.STATION_ZONES, "CS-POW", encode(zone))
    async with charger(gateway.port, "CS-POW", "2.0.1", cls=PowerOnly201) as cs:
        await cs.call(call201.BootNotification(charging_station={"model": "M", "vendor_name": "V"},
                                               reason="PowerUp"))  # fmt: skip
        await command(bus, "CS-POW", 7.0)
        profile = await asyncio.wait_for(cs.profiles.get(), 10)
        (schedule,) = profile["charging_schedule"]
        assert schedule["charging_rate_unit"] == "W" and profile["stack_level"] == 2
        assert schedule["charging_schedule_period"][0]["limit"] == 7000.0


class CountingConfig16(CurrentOnly16):
    """CurrentOnly16 that counts the capability queries it is asked."""

    asked = 0

    @on(Action16.get_configuration)
    async def on_get_configuration(self, key: list[str] | None = None, **_):
        self.asked += 1
        return await super().on_get_configuration(key)


async def test_capabilities_are_asked_once_at_boot_not_when_the_first_profile_is_due(
    gateway: Gateway, bus: Bus
) -> None:
    # At 5,000 chargers the queries were a tenth of the gateway's work while an event was
    # applied (bench/dr_latency.py --profile), one round trip more before each profile.
    async with charger(gateway.port, "CP-ASK", cls=CountingConfig16) as cp:
        await boot16(cp)
        async with asyncio.timeout(5):
            while cp.asked == 0:  # asked with no command pending
                await asyncio.sleep(0.02)
        await command(bus, "CP-ASK", 11.0)
        profile = await asyncio.wait_for(cp.profiles.get(), 10)
        assert profile["charging_schedule"]["charging_rate_unit"] == "A"  # what it answered
        await command(bus, "CP-ASK", 5.0)
        await asyncio.wait_for(cp.profiles.get(), 10)
        assert cp.asked == 1


async def test_nothing_sent_before_the_charger_speaks(gateway: Gateway, bus: Bus) -> None:
    async with charger(gateway.port, "CP-QUIET") as cp:
        async with asyncio.timeout(5):
            while "CP-QUIET" not in gateway.commands.stations:
                await asyncio.sleep(0.02)
        await command(bus, "CP-QUIET", 8.0)
        await settle(gateway, "CP-QUIET", 8.0)
        assert cp.profiles.empty()  # connected, but it has not booted or said anything
        await boot16(cp)
        assert limit16(await asyncio.wait_for(cp.profiles.get(), 10)) == 8000.0


def test_command_keys_from_risingwave_json_keys_map_to_the_station() -> None:
    from ocpp_gateway.commands import station_key

    assert station_key("CP-1") == "CP-1"
    assert station_key('{"station_id": "CP-1"}') == "CP-1"
    assert station_key("{not json") == "{not json"
    assert station_key(None) is None


def test_ack_rate_per_signal_counts_profile_attempts() -> None:
    from prometheus_client import CollectorRegistry

    from ocpp_gateway.metrics import GatewayMetrics

    m = GatewayMetrics(CollectorRegistry())
    m.command_outcome("sig-1", "SetChargingProfile", "Accepted")
    m.command_outcome("sig-1", "SetChargingProfile", "Rejected")
    m.command_outcome("sig-1", "ClearChargingProfile", "Rejected")  # clears are not acks
    m.command_outcome(None, "SetChargingProfile", "Timeout")
    assert m.ack_rate.labels("sig-1")._value.get() == 0.5
    assert b'gridctl_command_ack_rate{signal_id="sig-1"} 0.5' in m.render()


class SlowConfig16(Charger16):
    """Answers GetConfiguration only after the gateway's capability query gave up."""

    @on(Action16.get_configuration)
    async def on_get_configuration(self, key: list[str] | None = None, **_):
        from ocpp.v16 import call_result as result16

        await asyncio.sleep(1.0)
        return result16.GetConfiguration(configuration_key=[])


async def test_a_capability_query_that_times_out_does_not_block_the_profile(
    bus: Bus, gateway_config: GatewayConfig
) -> None:
    # The query's timeout cancels the wait for its answer: the call must be abandoned, or
    # the profile behind it meets "GetConfiguration still waits for an answer" (seen with
    # 10,000 chargers in bench/dr_latency.py) and the station never gets a limit.
    gw = Gateway(bus, replace(gateway_config, capability_timeout=0.3))
    await gw.start()
    try:
        async with charger(gw.port, "CP-SLOWCFG", cls=SlowConfig16) as cp:
            await boot16(cp)
            await command(bus, "CP-SLOWCFG", 3.0)
            profile = await asyncio.wait_for(cp.profiles.get(), 10)
            assert float(limit16(profile)) == 3000.0  # W by default (capabilities unknown)
            assert await results(bus, "CP-SLOWCFG", 1) == [("SetChargingProfile", "Accepted")]
    finally:
        await gw.stop()
