"""Normalisation tables: samples in the shape of the specs' examples -> contract fields."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ocpp_gateway.normalise import Bounds, ImplausibleReading, NormaliseError, parse_ts
from ocpp_gateway.v16.normalise import meter_values as meter_values_v16
from ocpp_gateway.v201.normalise import meter_values as meter_values_v201

TS = "2026-11-24T10:00:00Z"
RX = datetime(2026, 11, 24, 10, 0, 1, tzinfo=UTC)
FIELDS = ("power_kw", "current_a", "voltage_v", "energy_kwh", "soc_percent")


def one16(*sampled: dict) -> dict:
    (record,) = meter_values_v16(
        "CP", 1, [{"timestamp": TS, "sampled_value": list(sampled)}], received_ts=RX
    )
    return {f: getattr(record, f) for f in FIELDS}


def one201(*sampled: dict) -> dict:
    (record,) = meter_values_v201(
        "CS", 1, [{"timestamp": TS, "sampled_value": list(sampled)}], received_ts=RX
    )
    return {f: getattr(record, f) for f in FIELDS}


def only(**fields: float) -> dict:
    return {f: fields.get(f) for f in FIELDS}


E = "Energy.Active.Import.Register"
P = "Power.Active.Import"
C = "Current.Import"

V16_TABLE = [
    # the bare sample of the spec: no measurand, no unit -> energy register in Wh
    ([{"value": "12345"}], only(energy_kwh=12.345)),
    ([{"value": "12.5", "measurand": E, "unit": "kWh"}], only(energy_kwh=12.5)),
    ([{"value": "7360", "measurand": P, "unit": "W"}], only(power_kw=7.36)),
    ([{"value": "7.36", "measurand": P, "unit": "kW"}], only(power_kw=7.36)),
    ([{"value": "7360", "measurand": P}], only(power_kw=7.36)),  # default unit W
    # per-phase power and current are summed
    (
        [{"value": v, "measurand": P, "phase": ph, "unit": "W"}
         for v, ph in (("3680", "L1"), ("3680", "L2"), ("3640", "L3"))],
        only(power_kw=11.0),
    ),
    (
        [{"value": "16", "measurand": C, "phase": ph} for ph in ("L1", "L2", "L3")],
        only(current_a=48.0),
    ),
    # a phase-less total wins over the phases; the neutral is never summed
    (
        [{"value": "11000", "measurand": P},
         {"value": "1", "measurand": P, "phase": "L1"},
         {"value": "99", "measurand": C, "phase": "N"},
         {"value": "16", "measurand": C, "phase": "L1"}],
        only(power_kw=11.0, current_a=16.0),
    ),
    # voltage is averaged, never summed
    (
        [{"value": v, "measurand": "Voltage", "phase": ph, "unit": "V"}
         for v, ph in (("229", "L1-N"), ("231", "L2-N"), ("230", "L3-N"))],
        only(voltage_v=230.0),
    ),
    ([{"value": "81", "measurand": "SoC", "location": "EV", "unit": "Percent"}],
     only(soc_percent=81.0)),
    # EV-side power is not what the grid sees; the outlet value wins over the inlet value
    (
        [{"value": "5000", "measurand": P, "location": "EV"},
         {"value": "7000", "measurand": P, "location": "Inlet"},
         {"value": "6900", "measurand": P, "location": "Outlet"}],
        only(power_kw=6.9),
    ),
    # unknown measurands and signed data are skipped, not zero
    (
        [{"value": "25", "measurand": "Temperature", "unit": "Celsius"},
         {"value": "abcd", "format": "SignedData"},
         {"value": "1000", "measurand": E, "context": "Sample.Clock"}],
        only(energy_kwh=1.0),
    ),
    # a broken SoC sensor leaves the field null rather than the record invalid
    ([{"value": "140", "measurand": "SoC"}, {"value": "1"}], only(energy_kwh=0.001)),
]  # fmt: skip


@pytest.mark.parametrize(("sampled", "expected"), V16_TABLE)
def test_v16_table(sampled: list[dict], expected: dict) -> None:
    assert one16(*sampled) == pytest.approx(expected)


V201_TABLE = [
    ([{"value": 12345}], only(energy_kwh=12.345)),
    ([{"value": 12.5, "measurand": E, "unit_of_measure": {"unit": "kWh"}}], only(energy_kwh=12.5)),
    # multiplier: a power of ten on the value in the given unit
    ([{"value": 7.36, "measurand": P, "unit_of_measure": {"unit": "W", "multiplier": 3}}],
     only(power_kw=7.36)),
    ([{"value": 736, "measurand": P, "unit_of_measure": {"unit": "kW", "multiplier": -2}}],
     only(power_kw=7.36)),
    ([{"value": 16.0, "measurand": C, "phase": ph} for ph in ("L1", "L2", "L3")],
     only(current_a=48.0)),
    ([{"value": 55, "measurand": "SoC", "location": "EV"},
      {"value": 400, "measurand": "Voltage"}],
     only(soc_percent=55.0, voltage_v=400.0)),
]  # fmt: skip


@pytest.mark.parametrize(("sampled", "expected"), V201_TABLE)
def test_v201_table(sampled: list[dict], expected: dict) -> None:
    assert one201(*sampled) == pytest.approx(expected)


def test_record_metadata_and_one_record_per_timestamp() -> None:
    records = meter_values_v16(
        "CP-9",
        2,
        [
            {"timestamp": "2026-11-24T10:59:30+01:00", "sampled_value": [{"value": "1"}]},
            {"timestamp": "2026-11-24T10:00:10", "sampled_value": [{"value": "2"}]},
            {"timestamp": TS, "sampled_value": [{"value": "3", "measurand": "Temperature"}]},
        ],
        session_id="42",
        received_ts=RX,
    )
    assert len(records) == 2  # the temperature-only sample carries none of our fields
    first, second = records
    assert (first.station_id, first.connector_id, first.session_id) == ("CP-9", 2, "42")
    # 31 s behind the received time (> 5 s): ours, the charger's kept aside
    assert first.event_ts == RX
    assert first.charger_ts == datetime(2026, 11, 24, 9, 59, 30, tzinfo=UTC)
    assert second.event_ts.tzinfo is not None  # naive charger clock read as UTC
    assert first.received_ts == RX and first.ocpp_version == "1.6"


@pytest.mark.parametrize(
    ("fn", "sampled"),
    [
        (meter_values_v16, [{"value": "seven"}]),
        (meter_values_v16, [{"value": "1", "unit": "furlongs"}]),
        (meter_values_v201, [{"value": "7"}]),
        (meter_values_v201, [{"value": True}]),
    ],
)
def test_unreadable_values_raise(fn, sampled: list[dict]) -> None:
    with pytest.raises(NormaliseError):
        fn("CP", 1, [{"timestamp": TS, "sampled_value": sampled}])


def test_bad_timestamp_raises() -> None:
    with pytest.raises(NormaliseError):
        parse_ts("yesterday")


# -- time is ours; impossible readings are refused (issue 11) -----------------------------


@pytest.mark.parametrize(
    ("stamp", "event_ts", "charger_ts"),
    [
        # 1 s after RX: within the 1 s a reading may seem ahead, the charger's time is kept
        ("2026-11-24T10:00:02Z", datetime(2026, 11, 24, 10, 0, 2, tzinfo=UTC), None),
        # 2 s after RX: a clock ahead of ours, which would move the watermark: ours
        ("2026-11-24T10:00:03Z", RX, datetime(2026, 11, 24, 10, 0, 3, tzinfo=UTC)),
        # exactly 5 s behind (the default skew): still within
        ("2026-11-24T09:59:56Z", datetime(2026, 11, 24, 9, 59, 56, tzinfo=UTC), None),
        # 6 s behind: the received time, the charger's kept aside
        ("2026-11-24T09:59:55Z", RX, datetime(2026, 11, 24, 9, 59, 55, tzinfo=UTC)),
        ("2100-01-01T00:00:00Z", RX, datetime(2100, 1, 1, tzinfo=UTC)),
        ("1970-01-01T00:00:00Z", RX, datetime(1970, 1, 1, tzinfo=UTC)),
    ],
)
def test_charger_time_is_bounded_by_the_received_time(stamp, event_ts, charger_ts) -> None:
    (record,) = meter_values_v16(
        "CP", 1, [{"timestamp": stamp, "sampled_value": [{"value": "1"}]}], received_ts=RX
    )
    assert (record.event_ts, record.charger_ts) == (event_ts, charger_ts)


def test_skew_bound_is_configurable_behind_but_never_ahead() -> None:
    behind = [{"timestamp": "2026-11-24T09:59:52Z", "sampled_value": [{"value": "1"}]}]
    (record,) = meter_values_v16("CP", 1, behind, received_ts=RX, bounds=Bounds(max_skew_s=10))
    assert record.event_ts == datetime(2026, 11, 24, 9, 59, 52, tzinfo=UTC)  # 9 s <= 10 s
    assert record.charger_ts is None
    ahead = [{"timestamp": "2026-11-24T10:00:05Z", "sampled_value": [{"value": "1"}]}]
    (record,) = meter_values_v16("CP", 1, ahead, received_ts=RX, bounds=Bounds(max_skew_s=10))
    assert record.event_ts == RX  # 4 s ahead: never within, whatever the skew
    assert record.charger_ts == datetime(2026, 11, 24, 10, 0, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("fn", "sampled"),
    [
        (meter_values_v16, [{"value": "-500", "measurand": P, "unit": "W"}]),
        (meter_values_v16, [{"value": "NaN", "measurand": P}]),
        (meter_values_v16, [{"value": "Infinity", "measurand": P}]),
        (meter_values_v16, [{"value": "1e400"}]),
        (meter_values_v16, [{"value": "-1", "measurand": E}]),
        (meter_values_v16, [{"value": "7000", "measurand": P, "unit": "Wh"}]),
        (meter_values_v16, [{"value": "7", "measurand": E, "unit": "kW"}]),
        (meter_values_v16, [{"value": "16", "measurand": C, "unit": "V"}]),
        (meter_values_v16, [{"value": "1e12", "measurand": P, "unit": "W"}]),  # 1 GW
        (meter_values_v16, [{"value": "-2", "measurand": C}]),
        (meter_values_v16, [{"value": "3000", "measurand": "Voltage"}]),
        (meter_values_v201, [{"value": 1, "unit_of_measure": {"multiplier": 400}}]),
        (meter_values_v201, [{"value": 1, "unit_of_measure": {"multiplier": -400}}]),
        (meter_values_v201, [{"value": 1e308, "unit_of_measure": {"multiplier": 9}}]),
        (meter_values_v201, [{"value": -7.4, "measurand": P, "unit_of_measure": {"unit": "kW"}}]),
    ],
)
def test_impossible_readings_raise(fn, sampled: list[dict]) -> None:
    with pytest.raises(ImplausibleReading) as err:
        fn("CP", 1, [{"timestamp": TS, "sampled_value": sampled}], received_ts=RX)
    assert err.value.code == "PropertyConstraintViolation"


def test_power_above_the_station_bound_raises() -> None:
    mv = [{"timestamp": TS, "sampled_value": [{"value": "33.1", "measurand": P, "unit": "kW"}]}]
    bounds = Bounds(max_power_kw=33.0)  # e.g. a 22 kW station with factor 1.5
    with pytest.raises(ImplausibleReading, match=r"power_kw 33\.1 kW"):
        meter_values_v16("CP", 1, mv, received_ts=RX, bounds=bounds)
    mv[0]["sampled_value"][0]["value"] = "33.0"
    (record,) = meter_values_v16("CP", 1, mv, received_ts=RX, bounds=bounds)
    assert record.power_kw == 33.0


def test_idle_noise_below_zero_reads_as_zero() -> None:
    assert one16({"value": "-12", "measurand": P, "unit": "W"}) == only(power_kw=0.0)
    assert one16({"value": "-0.2", "measurand": C}) == only(current_a=0.0)
