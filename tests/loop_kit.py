"""What every whole-loop test does before its own part: a runtime, stations, chargers drawing.

The loop tests (plain HTTP, OpenADR 2.0b and 3, uncontrollable chargers, the operator
views) each start ``gridctl run``'s runtime in-process, import stations through the real
``gridctl`` command, and connect ocpp-library chargers that boot, start a transaction and
report a steady load. Each of those steps lives here once, so a test shows only what it
checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from ocpp.v16 import call

from cli.runtime import RunSettings
from pipeline.embedded_pg import free_port
from tests.ocpp_gateway.chargers import charger

GRIDCTL = [sys.executable, "-m", "cli.main"]
STATIONS_HEADER = (
    "station_id,zone_id,max_station_kw,contract_max_kw,min_active_kw,"
    "charging_rate_unit,phases,voltage_v,password\n"
)


async def gridctl(*args: str, env: dict[str, str] | None = None) -> str:
    """Run the real CLI in a subprocess; its stdout, or the test fails with its stderr."""
    proc = await asyncio.create_subprocess_exec(
        *GRIDCTL,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=Path(__file__).resolve().parent.parent,
        env=env,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, f"gridctl {' '.join(args)}: {err.decode()}{out.decode()}"
    return out.decode()


def loop_settings(tmp_path: Path, postgres: str, **overrides: Any) -> RunSettings:
    """A runtime on free loopback ports with a 0.5 s tick; ``overrides`` are the test's own."""
    fields: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "database_url": postgres,
        "ocpp_port": free_port(),
        "api_port": free_port(),
        "tick": 0.5,
    }
    fields.update(overrides)
    return RunSettings(**fields)


async def engine_sees_load(dsn: str, station: str, timeout: float = 90.0) -> None:
    """Wait until the engine counts ``station``'s load.

    On the session's shared broker the engine first ingests what every earlier test
    published; on a loaded machine that can take longer than a fixed sleep. The 5 s the
    loop is given start once the engine can act on a signal, as in production.
    """

    def load() -> float | None:
        with psycopg.connect(dsn) as conn:
            row = conn.execute(
                "SELECT load_kw FROM station_load WHERE station_id = %s", (station,)
            ).fetchone()
        return row[0] if row else None

    async with asyncio.timeout(timeout):
        while not await asyncio.to_thread(load):
            await asyncio.sleep(0.25)


def api_args(endpoints: Any) -> list[str]:
    """The ``--api``/``--token`` flags that point the CLI at this runtime."""
    return ["--api", endpoints.api_url, "--token", endpoints.token or ""]


async def import_stations(tmp_path: Path, api: list[str], rows: Iterable[str]) -> None:
    """``gridctl stations import`` of CSV rows (columns as :data:`STATIONS_HEADER`)."""
    csv = tmp_path / "stations.csv"
    csv.write_text(STATIONS_HEADER + "".join(f"{row}\n" for row in rows))
    await gridctl("stations", "import", str(csv), *api)


def three_phase_station(station: str, zone: str) -> str:
    """The CSV row of a 22 kW three-phase station commanded in W (password ``s3cret-pw``)."""
    return f"{station},{zone},22,22,1.4,W,3,230,s3cret-pw"


async def meter_loop(cp: Any, watts: float) -> None:
    """Report ``watts`` on connector 1 every 0.5 s until cancelled (chargers do not obey)."""
    while True:
        await cp.call(
            call.MeterValues(
                connector_id=1,
                transaction_id=1,
                meter_value=[
                    {
                        "timestamp": datetime.now(UTC).isoformat(),
                        "sampled_value": [
                            {"value": str(watts), "measurand": "Power.Active.Import", "unit": "W"}
                        ],
                    }
                ],
            )
        )
        await asyncio.sleep(0.5)


@contextlib.asynccontextmanager
async def charging(
    port: int, station: str, watts: float, *, password: str = "s3cret-pw", **kwargs: Any
) -> AsyncIterator[Any]:
    """A 1.6 charger that booted, started a transaction on connector 1 and reports
    ``watts`` every 0.5 s while the block runs; ``kwargs`` go to ``charger``."""
    async with charger(port, station, password=password, **kwargs) as cp:
        boot = await cp.call(call.BootNotification(charge_point_model="m", charge_point_vendor="v"))
        assert boot.status == "Accepted"
        started = await cp.call(
            call.StartTransaction(
                connector_id=1, id_tag="T", meter_start=0, timestamp=datetime.now(UTC).isoformat()
            )
        )
        assert started.transaction_id
        meter = asyncio.create_task(meter_loop(cp, watts))
        try:
            yield cp
        finally:
            meter.cancel()
            with contextlib.suppress(BaseException):
                await meter


def profile_limit_kw(profile: dict[str, Any], phases: int = 3, voltage_v: float = 230) -> float:
    """The first period's limit of a received profile, in kW whatever its unit."""
    schedule = profile["charging_schedule"]
    limit = float(schedule["charging_schedule_period"][0]["limit"])  # a Decimal from JSON
    if schedule["charging_rate_unit"] == "W":
        return round(limit / 1000, 3)
    return round(limit * phases * voltage_v / 1000, 3)
