"""Generated stations: deterministic, the right mix, and a CSV that round-trips."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from simulator import stations as st
from simulator.errors import ConfigError


def test_same_seed_same_fleet_other_seed_other_passwords() -> None:
    a = st.generate(50, zones=5, seed=1, ratio_201=0.3, reject_max_profile_fraction=0.2)
    assert a == st.generate(50, zones=5, seed=1, ratio_201=0.3, reject_max_profile_fraction=0.2)
    b = st.generate(50, zones=5, seed=2, ratio_201=0.3)
    assert [s.password for s in a] != [s.password for s in b]


def test_ids_zones_and_version_ratio() -> None:
    fleet = st.generate(10, zones=3, ratio_201=0.5)
    assert fleet[0].station_id == "sim-0001" and fleet[9].station_id == "sim-0010"
    assert [s.zone_id for s in fleet[:4]] == ["zone-01", "zone-02", "zone-03", "zone-01"]
    assert sum(s.ocpp_version == "2.0.1" for s in fleet) == 5
    assert st.station_id(0, 12345) == "sim-00001"
    assert all(s.ocpp_version == "1.6" for s in st.generate(4, ratio_201=0.0))
    assert all(s.ocpp_version == "2.0.1" for s in st.generate(4, ratio_201=1.0))


def test_min_active_is_the_six_amp_floor() -> None:
    for s in st.generate(40, seed=3):
        assert s.min_active_kw == pytest.approx(6 * 230 * s.phases / 1000, abs=0.1)
        assert s.min_active_kw >= 6 * 230 * s.phases / 1000


def test_csv_round_trip(tmp_path: Path) -> None:
    fleet = st.generate(20, zones=4, seed=9, ratio_201=0.25)
    path = tmp_path / "stations.csv"
    st.write_csv(fleet, path)
    header = path.read_text().splitlines()[0]
    assert header == ",".join(st.COLUMNS)
    assert st.read_csv(path, seed=9, ratio_201=0.25) == fleet


def test_password_file_shared_and_per_station(tmp_path: Path) -> None:
    fleet = st.generate(3)
    shared = tmp_path / "pw"
    shared.write_text("hunter2\n")
    assert {s.password for s in st.apply_passwords(fleet, shared)} == {"hunter2"}
    table = tmp_path / "pw.csv"
    table.write_text("# id,password\nsim-0002,two\n")
    out = st.apply_passwords(fleet, table)
    assert out[1].password == "two" and out[0].password == fleet[0].password


def test_bad_input_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        st.generate(0)
    bad = tmp_path / "bad.csv"
    bad.write_text("name,zone\nx,y\n")
    with pytest.raises(ConfigError):
        st.read_csv(bad)


def test_exported_csv_is_what_stations_import_reads(tmp_path: Path) -> None:
    from dr_bridge.stations_csv import read_stations  # the `gridctl stations import` reader

    fleet = st.generate(12, zones=3, seed=2)
    path = tmp_path / "stations.csv"
    st.write_csv(fleet, path)

    def fake_hash(pw: str) -> str:  # well-formed, and cheaper than scrypt
        return "scrypt$" + "00" * 16 + "$" + hashlib.sha256(pw.encode()).hexdigest()

    rows = read_stations(path, hasher=fake_hash)
    assert [r["station_id"] for r in rows] == [s.station_id for s in fleet]
    assert [r["password_hash"] for r in rows] == [fake_hash(s.password) for s in fleet]
    assert {r["zone_id"] for r in rows} == {"zone-01", "zone-02", "zone-03"}
