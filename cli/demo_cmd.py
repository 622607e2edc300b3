"""``gridctl demo``: watch a DR event curtail a zone of simulated chargers, live."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from cli.demo import Demo, DemoConfig, DemoState
from cli.durations import duration_option
from cli.output import console as plain_console

_BARS = " ▁▂▃▄▅▆▇█"


def _spark(values: list[float], top: float) -> str:
    if not values or top <= 0:
        return ""
    return "".join(_BARS[min(8, int(8 * v / top))] for v in values[-40:])


def render(state: DemoState) -> Group:
    zones = Table(title="zones: load vs cap", expand=True)
    for column in ("zone", "load kW", "cap kW", "capacity kW", "load over time", "signal"):
        zones.add_column(column)
    for row in state.zones:
        series = [load for _, load, _ in state.history.get(row.zone_id, [])]
        top = max([row.capacity_kw, *series]) if series else row.capacity_kw
        over = row.cap_kw is not None and row.load_kw > row.cap_kw
        zones.add_row(
            row.zone_id,
            f"[red]{row.load_kw:.1f}[/red]" if over else f"{row.load_kw:.1f}",
            "-" if row.cap_kw is None else f"{row.cap_kw:.1f}",
            f"{row.capacity_kw:.1f}",
            _spark(series, top),
            row.signal_id or "",
        )
    stats = Table.grid(padding=(0, 2))
    stats.add_row("chargers connected", f"{state.connected}/{state.chargers}")
    stats.add_row("stations limited now", str(state.limited))
    stats.add_row(
        "profiles received (event zone)",
        f"{len(state.profiles_received)}/{len(state.zone_stations) or '-'}",
    )
    stats.add_row("command results", ", ".join(f"{k} {v}" for k, v in state.command_status.items()))
    stats.add_row("alerts", str(len(state.alerts)))
    log = "\n".join(state.log)
    return Group(
        Panel(zones, title=f"gridctl demo: {state.phase}"),
        Panel(stats, title="commands"),
        Panel(log or "…", title="events"),
    )


def summary(state: DemoState) -> Table:
    table = Table(title="demo summary", show_header=False)
    latency = state.last_profile_latency
    table.add_row(
        "DR signal → last SetChargingProfile",
        "-"
        if latency is None
        else f"{latency * 1000:.0f} ms "
        f"({len(state.profiles_received)}/{len(state.zone_stations)} stations of the zone)",
    )
    table.add_row(
        "DR signal → zone under its cap",
        "not reached" if state.under_cap_after is None else f"{state.under_cap_after:.1f} s",
    )
    total = sum(state.command_status.values())
    table.add_row(
        "commands accepted / total",
        f"{state.command_status.get('Accepted', 0)}/{total}  {dict(state.command_status)}",
    )
    table.add_row(
        "profiles cleared after the event",
        f"{len(state.clears_received)}/{len(state.zone_stations)}",
    )
    table.add_row("alerts raised", str(len(state.alerts)))
    return table


def demo(
    chargers: Annotated[int, typer.Option(min=1, help="simulated chargers")] = 60,
    zones: Annotated[int, typer.Option(min=1, help="zones")] = 3,
    duration: Annotated[
        str,
        typer.Option(
            help="How long the whole demo runs (at least 40s): 2m, 90s.",
            callback=duration_option("--duration", minimum=40),
        ),
    ] = "2m",
    reduce_pct: Annotated[float, typer.Option(min=1, max=100)] = 40.0,
    live: Annotated[bool, typer.Option("--live/--no-live", help="live view or plain lines")] = True,
    seed: int = 7,
) -> None:
    """Run gridctl embedded with a simulated fleet and a scripted DR event on one zone."""
    # In a pipe nothing wraps: the DSN and the token's path stay whole lines to copy.
    console = Console() if Console().is_terminal else plain_console()
    logging.basicConfig(level=logging.WARNING)
    config = DemoConfig(
        chargers=chargers, zones=zones, duration=float(duration), reduce_pct=reduce_pct, seed=seed
    )
    if live and console.is_terminal:
        scenario = Demo(config)

        async def main() -> DemoState:
            task = asyncio.create_task(scenario.run())
            with Live(render(scenario.state), console=console, refresh_per_second=4) as view:
                while not task.done():
                    view.update(render(scenario.state))
                    await asyncio.sleep(0.25)
                view.update(render(scenario.state))
            return await task

        state = asyncio.run(main())
    else:
        state = asyncio.run(Demo(config, on_line=lambda line: console.print(line)).run())
    console.print(summary(state))
    console.print(
        "next: `gridctl run` keeps the controller running (README: Run it); "
        "`gridctl simulate --export-stations stations.csv` then "
        "`gridctl stations import stations.csv` and `gridctl simulate` give it a fleet; "
        "`gridctl status` and the status page at the API's / show what it does."
    )
    if state.last_profile_latency is None:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
