"""``gridctl dr send|cancel|list`` through typer's CliRunner against a real API server."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from cli import dr_cmd
from pipeline import topics
from pipeline.contracts import StationZone, encode
from tests.dr_bridge.live_api import LiveApi, live_api

#: A day two months ahead: signals may start at most a year ahead.
DAY = (datetime.now(UTC) + timedelta(days=60)).date().isoformat()


@pytest.fixture
def api(tmp_path: Path) -> Iterator[LiveApi]:
    with live_api(tmp_path) as live:
        z = StationZone(station_id="cs-1", zone_id="zone-a", max_station_kw=22, contract_max_kw=22)
        live.run(live.bus.publish(topics.STATION_ZONES, "cs-1", encode(z)))
        live.bridge.zones.put(z)  # type: ignore[union-attr]
        yield live


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    dr_cmd.register(app)
    return app


def invoke(app: typer.Typer, api: LiveApi, *args: str, token_from_file: bool = True):  # type: ignore[no-untyped-def]
    common = ["--api", api.url, "--data-dir", str(api.data_dir)]
    return CliRunner().invoke(app, [*args, *common], env={"COLUMNS": "200"})


def test_send_list_cancel_with_the_token_from_the_data_dir(app: typer.Typer, api: LiveApi) -> None:
    assert (api.data_dir / "api-token").stat().st_mode & 0o777 == 0o600
    sent = invoke(
        app,
        api,
        "dr",
        "send",
        "--zone",
        "zone-a",
        "--reduce-kw",
        "12",
        "--duration",
        "15m",
        "--priority",
        "1",
        "--id",
        "cli-1",
    )
    assert sent.exit_code == 0, sent.output
    assert "sent cli-1 (modification 0): CURTAIL zone-a -12 kW" in sent.output
    on_bus = api.signals()["cli-1"]
    assert (on_bus.target_reduction_kw, on_bus.priority, on_bus.signal_type) == (12, 1, "CURTAIL")

    shed = invoke(
        app,
        api,
        "dr",
        "send",
        "--zone",
        "zone-a",
        "--reduce-pct",
        "100",
        "--type",
        "SHED",
        "--start",
        f"{DAY}T10:00:00+01:00",
        "--end",
        f"{DAY}T11:00:00+01:00",
        "--id",
        "cli-2",
    )
    assert shed.exit_code == 0, shed.output
    assert api.signals()["cli-2"].signal_type == "SHED"

    listed = invoke(app, api, "dr", "list")
    assert listed.exit_code == 0, listed.output
    assert "cli-1" in listed.output and "cli-2" in listed.output
    assert "-12 kW" in listed.output and "-100 %" in listed.output

    cancelled = invoke(app, api, "dr", "cancel", "cli-1")
    assert cancelled.exit_code == 0, cancelled.output
    assert "RESTORE, modification 1" in cancelled.output
    assert api.signals()["cli-1"].signal_type == "RESTORE"
    active = invoke(app, api, "dr", "list")
    assert "cli-1" not in active.output
    assert "cli-1" in invoke(app, api, "dr", "list", "--all").output


def test_refusals_name_each_flag_typed(app: typer.Typer, api: LiveApi) -> None:
    r = invoke(
        app,
        api,
        "dr",
        "send",
        "--zone",
        "nowhere",
        "--reduce-kw",
        "5",
        "--limit-kw",
        "3",
        "--end",
        "2030-01-01T10:00:00",
    )
    assert r.exit_code == 1
    for flag in ("--zone", "--reduce-kw", "--limit-kw", "--end"):
        assert f"  {flag}:" in r.output
    # the API's field names do not show; the rule reads in flags too
    assert "target_reduction_kw" not in r.output and "zone_limit_kw" not in r.output
    assert api.signals() == {}


def test_env_token_and_wrong_token(app: typer.Typer, api: LiveApi, tmp_path: Path) -> None:
    token = (api.data_dir / "api-token").read_text().strip()
    elsewhere = tmp_path / "empty"
    ok = CliRunner().invoke(
        app,
        ["dr", "list", "--api", api.url, "--data-dir", str(elsewhere)],
        env={"GRIDCTL_API_TOKEN": token},
    )
    assert ok.exit_code == 0, ok.output
    bad = CliRunner().invoke(app, ["dr", "list", "--api", api.url, "--token", "nope"])
    assert bad.exit_code == 1
    assert "401" in bad.output
    none = CliRunner().invoke(
        app,
        ["dr", "list", "--api", api.url, "--data-dir", str(elsewhere)],
        env={"GRIDCTL_API_TOKEN": ""},
    )
    assert none.exit_code == 1
    assert "no API token" in none.output


def test_unreachable_api(app: typer.Typer, tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["dr", "list", "--api", "http://127.0.0.1:9", "--token", "t"])
    assert r.exit_code == 1
    assert "cannot reach the API" in r.output
