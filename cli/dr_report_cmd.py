"""``gridctl dr report ID``: the DR event report of a signal, as the utility would settle it.

Thin: asks the API (``GET /v1/signals/{id}/report``), prints the totals and the minutes,
or the CSV as it came (``--csv``).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from cli.dr_cmd import (
    DEFAULT_API,
    DEFAULT_DATA_DIR,
    ApiOption,
    DataDirOption,
    TokenOption,
    client_from,
    fail,
)
from cli.output import JsonOption
from dr_bridge.client import ApiError


def _num(value: Any, unit: str = "") -> str:
    if value is None:
        return "–"
    return f"{value:g}{unit}" if isinstance(value, int | float) else str(value)


def summary_lines(r: dict[str, Any]) -> list[str]:
    """The totals, one per line: what a settlement reads first."""
    commands = (
        f"{r['commands_sent']} sent, {r['commands_accepted']} accepted, "
        f"{r['commands_not_supported']} not supported, {r['commands_rejected']} rejected, "
        f"{r['commands_failed']} timed out or offline"
    )
    stations = ", ".join(r["uncontrollable_stations"]) or "none"
    return [
        f"signal      {r['signal_id']} ({r['signal_type']}, priority {r['priority']}, "
        f"from {r['source']})",
        f"zone        {r['zone_id']}   {r['start_ts']} -> {r['end_ts']}",
        f"baseline    {_num(r['baseline_kw'], ' kW')} ({r['baseline_method']})",
        f"cap         {_num(r['cap_kw'], ' kW')}",
        f"energy      {_num(r['energy_kwh'], ' kWh')} "
        f"over {r['minutes_measured']} measured minutes",
        f"reduction   {_num(r['reduction_kwh'], ' kWh')}  "
        f"(average {_num(r['avg_reduction_kw'], ' kW')}, "
        f"peak {_num(r['peak_reduction_kw'], ' kW')})",
        f"compliance  {_num(r['compliance_pct'], ' %')} of the time under the cap",
        f"commands    {commands}",
        f"uncontrollable stations  {stations}",
    ]


def add_report_command(group: typer.Typer) -> None:
    @group.command("report")
    def report(
        signal_id: Annotated[str, typer.Argument(help="The signal to report on.")],
        csv: Annotated[bool, typer.Option("--csv", help="Print CSV, one line a minute.")] = False,
        json_out: JsonOption = False,
        api: ApiOption = DEFAULT_API,
        token: TokenOption = None,
        data_dir: DataDirOption = DEFAULT_DATA_DIR,
    ) -> None:
        """The event report: baseline, cap, load per minute, kWh reduced, compliance."""
        try:
            with client_from(api, token, data_dir) as client:
                if csv:
                    typer.echo(client.signal_report_csv(signal_id), nl=False)
                    return
                r = client.signal_report(signal_id)
        except ApiError as exc:
            raise fail(exc) from exc
        if json_out:
            typer.echo(json.dumps(r, indent=2))
            return
        console = Console(width=160)
        for line in summary_lines(r):
            console.print(line, highlight=False)
        table = Table(title=f"minutes ({len(r['minutes'])})", title_justify="left")
        for col in ("minute", "cap kW", "load kW", "reduction kW", "under cap"):
            table.add_column(col)
        for m in r["minutes"]:
            table.add_row(
                str(m["minute_start"])[:19].replace("T", " "),
                _num(m["cap_kw"]),
                _num(m["load_kw"]),
                _num(m["reduction_kw"]),
                {True: "yes", False: "no", None: "–"}[m["under_cap"]],
            )
        console.print(table)
