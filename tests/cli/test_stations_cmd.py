"""``gridctl stations import|list`` through typer's CliRunner against a real API server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from cli import stations_cmd
from pipeline import topics
from pipeline.secrets import verify_password
from tests.dr_bridge.live_api import LiveApi, live_api

HEADER = (
    "station_id,zone_id,max_station_kw,contract_max_kw,min_active_kw,"
    "charging_rate_unit,phases,voltage_v,password\n"
)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[LiveApi]:
    with live_api(tmp_path) as live:
        yield live


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    stations_cmd.register(app)
    return app


def invoke(app: typer.Typer, api: LiveApi, *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(
        app, [*args, "--api", api.url, "--data-dir", str(api.data_dir)], env={"COLUMNS": "200"}
    )


def test_import_hashes_passwords_and_lists(app: typer.Typer, api: LiveApi, tmp_path: Path) -> None:
    csv = tmp_path / "stations.csv"
    csv.write_text(
        HEADER + "cs-1,zone-a,22,22,1.4,A,3,230,pw-one\ncs-2,zone-b,11,7.4,,W,1,,pw-two\n"
    )
    r = invoke(app, api, "stations", "import", str(csv))
    assert r.exit_code == 0, r.output
    assert "imported 2 station(s) in 2 zone(s): zone-a, zone-b" in r.output

    zones = api.latest(topics.STATION_ZONES)
    assert zones["cs-1"].charging_rate_unit == "A" and zones["cs-1"].min_active_kw == 1.4
    assert (zones["cs-2"].phases, zones["cs-2"].voltage_v) == (1, 230.0)
    creds = api.latest(topics.STATION_CREDENTIALS)
    assert creds["cs-1"].password_hash.startswith("scrypt$")
    assert verify_password("pw-one", creds["cs-1"].password_hash)
    assert not verify_password("pw-two", creds["cs-1"].password_hash)
    assert "pw-one" not in str(zones) and "password" not in zones["cs-1"].__struct_fields__

    listed = invoke(app, api, "stations", "list")
    assert listed.exit_code == 0, listed.output
    assert "cs-1" in listed.output and "zone-b" in listed.output
    assert "scrypt" not in listed.output


def test_bad_rows_by_line_and_field_and_nothing_imported(
    app: typer.Typer, api: LiveApi, tmp_path: Path
) -> None:
    csv = tmp_path / "bad.csv"
    csv.write_text(
        HEADER + "cs-1,zone-a,22,22,0,W,3,230,ok\n"
        "cs-2,zone-a,-5,22,0,W,2,230,pw\n"
        "cs-3,,22,lots,0,X,3,230,\n"
        "cs-1,zone-a,22,22,0,W,3,230,dup\n"
    )
    r = invoke(app, api, "stations", "import", str(csv))
    assert r.exit_code == 1
    out = r.output
    assert "nothing imported" in out
    for expected in (
        "line 3: max_station_kw",
        "line 3: phases",
        "line 4: zone_id",
        "line 4: contract_max_kw",
        "line 4: charging_rate_unit",
        "line 4: password",
        "line 5: station_id",
    ):
        assert expected in out, expected
    assert "line 2:" not in out
    assert "duplicate of line 2" in out
    assert api.latest(topics.STATION_ZONES) == {}
    assert api.latest(topics.STATION_CREDENTIALS) == {}


def test_missing_columns(app: typer.Typer, api: LiveApi, tmp_path: Path) -> None:
    csv = tmp_path / "cols.csv"
    csv.write_text("station_id,zone_id\ncs-1,zone-a\n")
    r = invoke(app, api, "stations", "import", str(csv))
    assert r.exit_code == 1
    assert "missing column(s): max_station_kw, contract_max_kw, password" in r.output
