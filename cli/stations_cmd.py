"""``gridctl stations import|list``: stations through the bridge's API.

``import`` reads the CSV, checks every row, hashes each password on this machine
(scrypt, :mod:`pipeline.secrets`), and sends the whole list in one call; the API stores
all of it or none. Bad rows are printed by line and field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from cli.dr_cmd import (
    DEFAULT_API,
    DEFAULT_DATA_DIR,
    ApiOption,
    DataDirOption,
    TokenOption,
    client_from,
    fail,
)
from cli.output import CsvOption, JsonOption, choose, emit
from dr_bridge.client import ApiError
from dr_bridge.errors import SignalInvalid
from dr_bridge.stations_csv import line_of, read_stations

__all__ = ["register"]

#: what the table shows (JSON and CSV have every field the API returns)
LIST_COLUMNS = [
    "station_id",
    "zone_id",
    "connection",
    "last_seen",
    "ocpp_version",
    "connectors",
    "max_station_kw",
    "contract_max_kw",
    "limit_kw",
    "last_result",
]


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Import and list stations.", no_args_is_help=True)

    @group.command("import")
    def import_(
        csv_path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="stations.csv")],
        api: ApiOption = DEFAULT_API,
        token: TokenOption = None,
        data_dir: DataDirOption = DEFAULT_DATA_DIR,
    ) -> None:
        """Import stations from a CSV (all or nothing)."""
        err = Console(stderr=True)
        try:
            stations = read_stations(csv_path)
        except SignalInvalid as exc:
            err.print(f"[red]{csv_path}: nothing imported[/red]")
            for field, msg in exc.errors:
                err.print(f"  {field}: {msg}")
            raise typer.Exit(1) from exc
        try:
            with client_from(api, token, data_dir) as client:
                result = client.import_stations(stations)
        except ApiError as exc:
            if exc.fields:
                err.print(f"[red]{csv_path}: refused, nothing imported[/red]")
                for field, msg in exc.fields:
                    err.print(f"  {line_of(field)}: {msg}")
                raise typer.Exit(1) from exc
            raise fail(exc) from exc
        zones = sorted({s["zone_id"] for s in stations})
        Console().print(
            f"imported {result['imported']} station(s) in {len(zones)} zone(s): {', '.join(zones)}"
        )

    @group.command("list")
    def list_(
        api: ApiOption = DEFAULT_API,
        token: TokenOption = None,
        data_dir: DataDirOption = DEFAULT_DATA_DIR,
        json_out: JsonOption = False,
        csv_out: CsvOption = False,
    ) -> None:
        """List stations: zone, online or offline, last seen, connectors, limit, last result."""
        fmt = choose(json_out, csv_out)
        try:
            with client_from(api, token, data_dir) as client:
                stations = client.list_stations()
        except ApiError as exc:
            raise fail(exc) from exc
        columns = LIST_COLUMNS if fmt == "table" else list(stations[0]) if stations else []
        emit(
            fmt,
            f"stations ({len(stations)})",
            columns,
            [[s.get(c) for c in columns] for s in stations],
        )

    app.add_typer(group, name="stations")
