"""``gridctl dr send|cancel|list``: demand-response signals through the bridge's API.

Thin: parses, calls :class:`dr_bridge.client.ApiClient`, prints. The API validates; its
422 names each bad field and this prints them one per line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from dr_bridge.client import ApiClient, ApiError, resolve_token

__all__ = ["ApiOption", "DataDirOption", "TokenOption", "client_from", "fail", "register"]

ApiOption = Annotated[
    str, typer.Option("--api", envvar="GRIDCTL_API", help="Base URL of the gridctl API.")
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="GRIDCTL_API_TOKEN",
        help="API token; default: the token file in --data-dir.",
    ),
]
DataDirOption = Annotated[
    Path,
    typer.Option("--data-dir", envvar="GRIDCTL_DATA_DIR", help="Data directory of `gridctl run`."),
]
DEFAULT_API = "http://127.0.0.1:8080"
DEFAULT_DATA_DIR = Path(".gridctl")


def client_from(api: str, token: str | None, data_dir: Path) -> ApiClient:
    return ApiClient(api, resolve_token(token, data_dir))


def fail(exc: ApiError) -> typer.Exit:
    """Print an API error (each bad field on its own line); the exit to raise."""
    err = Console(stderr=True)
    if exc.fields:
        err.print(f"[red]refused (HTTP {exc.status}):[/red]")
        for field, msg in exc.fields:
            err.print(f"  {field}: {msg}")
    else:
        err.print(f"[red]error:[/red] {exc}")
    return typer.Exit(1)


def _amount(s: dict[str, Any]) -> str:
    if s.get("zone_limit_kw") is not None:
        return f"limit {s['zone_limit_kw']:g} kW"
    if s.get("target_reduction_kw") is not None:
        return f"-{s['target_reduction_kw']:g} kW"
    if s.get("target_reduction_pct") is not None:
        return f"-{s['target_reduction_pct']:g} %"
    return "-"


def _ts(text: str) -> str:
    return text.replace("T", " ")[:19] + (" UTC" if text.endswith(("Z", "+00:00")) else "")


def _state(s: dict[str, Any]) -> str:
    """enforced / waiting_for_load / infeasible (-x.x kW) / no_stations / scheduled ..."""
    state = str(s.get("state", "-"))
    detail = s.get("state_detail") or {}
    if state == "infeasible" and detail.get("shortfall_kw"):
        state += f" (short {detail['shortfall_kw']:g} kW)"
    return state


def warn(signal: dict[str, Any]) -> None:
    """Print the API's warnings about a signal (an infeasible cap, with its shortfall)."""
    err = Console(stderr=True, soft_wrap=True)
    for text in signal.get("warnings") or ():
        err.print(f"[yellow]warning:[/yellow] {text}")


def signals_table(signals: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title)
    cols = ("signal", "mod", "zone", "type", "amount", "start", "end", "prio", "source", "state")
    for col in cols:
        table.add_column(col, no_wrap=col in ("start", "end"))
    for s in signals:
        table.add_row(
            s["signal_id"],
            str(s["modification"]),
            s["zone_id"],
            s["signal_type"],
            _amount(s),
            _ts(s["start_ts"]),
            _ts(s["end_ts"]),
            str(s["priority"]),
            s["source"],
            _state(s),
        )
    return table


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Send, cancel and list demand-response signals.", no_args_is_help=True)

    @group.command("send")
    def send(
        zone: Annotated[str, typer.Option("--zone", help="Zone id.")],
        reduce_kw: Annotated[
            float | None, typer.Option("--reduce-kw", help="Reduce the zone by kW.")
        ] = None,
        reduce_pct: Annotated[
            float | None, typer.Option("--reduce-pct", help="Reduce by % of its load.")
        ] = None,
        limit_kw: Annotated[
            float | None, typer.Option("--limit-kw", help="Cap the zone at kW.")
        ] = None,
        signal_type: Annotated[str, typer.Option("--type", help="CURTAIL or SHED.")] = "CURTAIL",
        start: Annotated[
            str | None, typer.Option("--start", help="RFC 3339 with offset; default now.")
        ] = None,
        end: Annotated[str | None, typer.Option("--end", help="RFC 3339 with offset.")] = None,
        duration: Annotated[
            str | None, typer.Option("--duration", help="Instead of --end: 15m, 1h30m.")
        ] = None,
        priority: Annotated[
            int, typer.Option("--priority", help="1 emergency, 2 economic, 3 optional.")
        ] = 2,
        signal_id: Annotated[
            str | None, typer.Option("--id", help="Signal id; generated when absent.")
        ] = None,
        api: ApiOption = DEFAULT_API,
        token: TokenOption = None,
        data_dir: DataDirOption = DEFAULT_DATA_DIR,
    ) -> None:
        """Send a signal; prints it once the bus has confirmed it."""
        body: dict[str, Any] = {"zone_id": zone, "signal_type": signal_type.upper()}
        optional = {
            "target_reduction_kw": reduce_kw,
            "target_reduction_pct": reduce_pct,
            "zone_limit_kw": limit_kw,
            "start_ts": start,
            "end_ts": end,
            "duration": duration,
            "signal_id": signal_id,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        body["priority"] = priority
        try:
            with client_from(api, token, data_dir) as client:
                signal = client.send_signal(body)
        except ApiError as exc:
            raise fail(exc) from exc
        Console(soft_wrap=True).print(
            f"sent [b]{signal['signal_id']}[/b] (modification {signal['modification']}): "
            f"{signal['signal_type']} {signal['zone_id']} {_amount(signal)}, "
            f"{_ts(signal['start_ts'])} -> {_ts(signal['end_ts'])}"
            + (f" [{signal['state']}]" if signal.get("state") else "")
        )
        warn(signal)

    @group.command("cancel")
    def cancel(
        signal_id: Annotated[str, typer.Argument(help="The signal to end.")],
        api: ApiOption = DEFAULT_API,
        token: TokenOption = None,
        data_dir: DataDirOption = DEFAULT_DATA_DIR,
    ) -> None:
        """Cancel a signal: publishes a RESTORE revision."""
        try:
            with client_from(api, token, data_dir) as client:
                restore = client.cancel_signal(signal_id)
        except ApiError as exc:
            raise fail(exc) from exc
        Console().print(
            f"cancelled [b]{restore['signal_id']}[/b] "
            f"(RESTORE, modification {restore['modification']})"
        )

    @group.command("list")
    def list_(
        active: Annotated[
            bool, typer.Option("--active/--all", help="Only signals still in force.")
        ] = True,
        api: ApiOption = DEFAULT_API,
        token: TokenOption = None,
        data_dir: DataDirOption = DEFAULT_DATA_DIR,
    ) -> None:
        """List signals as a table."""
        try:
            with client_from(api, token, data_dir) as client:
                signals = client.list_signals(active=active)
        except ApiError as exc:
            raise fail(exc) from exc
        title = "active DR signals" if active else "DR signals"
        Console(width=160).print(signals_table(signals, f"{title} ({len(signals)})"))

    app.add_typer(group, name="dr")
