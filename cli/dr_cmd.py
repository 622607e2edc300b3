"""``gridctl dr send|cancel|list|report``: demand-response signals through the bridge's API.

Thin: parses, calls :class:`dr_bridge.client.ApiClient`, prints. The API validates; its
422 names each bad field and this prints them one per line.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from cli.options import DEFAULT_DATA_DIR, DataDirOption
from cli.output import CsvOption, JsonOption, choose, console, emit
from dr_bridge.client import ApiClient, ApiError, resolve_token
from pipeline.contracts import DemandResponseSignal

__all__ = [
    "DEFAULT_DATA_DIR",
    "ApiOption",
    "DataDirOption",
    "TokenOption",
    "client_from",
    "fail",
    "register",
]

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
DEFAULT_API = "http://127.0.0.1:8080"


def client_from(api: str, token: str | None, data_dir: Path) -> ApiClient:
    return ApiClient(api, resolve_token(token, data_dir))


#: the API's field -> the flag of ``dr send`` that sets it (422s name what was typed)
SEND_FLAGS = {
    "zone_id": "--zone",
    "signal_type": "--type",
    "target_reduction_kw": "--reduce-kw",
    "target_reduction_pct": "--reduce-pct",
    "zone_limit_kw": "--limit-kw",
    "start_ts": "--start",
    "end_ts": "--end",
    "duration": "--duration",
    "priority": "--priority",
    "signal_id": "--id",
}
_FIELD = re.compile(r"\b(" + "|".join(SEND_FLAGS) + r")\b")


def as_flags(text: str, flags: dict[str, str]) -> str:
    """``text`` with each API field name replaced by its flag."""
    return _FIELD.sub(lambda m: flags.get(m.group(1), m.group(1)), text)


def fail(exc: ApiError, flags: dict[str, str] | None = None) -> typer.Exit:
    """Print an API error (each bad field on its own line, named by its flag when
    ``flags`` maps it); the exit to raise."""
    err = Console(stderr=True, highlight=False)
    if exc.fields:
        err.print(f"[red]refused (HTTP {exc.status}):[/red]")
        for field, msg in exc.fields:
            name = flags.get(field, field) if flags else field
            err.print(f"  {name}: {as_flags(msg, flags) if flags else msg}", markup=False)
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
    """Signal ids are never cut: on a narrow terminal they fold onto the next line."""
    table = Table(title=title, title_justify="left")
    cols = ("signal", "mod", "zone", "type", "amount", "start", "end", "prio", "source", "state")
    for col in cols:
        table.add_column(col, no_wrap=col in ("start", "end"), overflow="fold")
    for s in signals:
        if "unreadable" in s:  # a stored revision that no longer decodes: say so, by id
            table.add_row(
                s["signal_id"], str(s.get("modification", "")), "", "UNREADABLE", "", "", "", "",
                s["unreadable"][:60],
            )  # fmt: skip
            continue
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
            raise fail(exc, SEND_FLAGS) from exc
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
        json_out: JsonOption = False,
        csv_out: CsvOption = False,
    ) -> None:
        """List signals (a table; --json or --csv for scripts)."""
        fmt = choose(json_out, csv_out)
        try:
            with client_from(api, token, data_dir) as client:
                signals = client.list_signals(active=active)
        except ApiError as exc:
            raise fail(exc) from exc
        if fmt != "table":
            columns = list(DemandResponseSignal.__struct_fields__)
            emit(fmt, "", columns, [[s.get(c) for c in columns] for s in signals])
            return
        title = "active DR signals" if active else "DR signals"
        console().print(signals_table(signals, f"{title} ({len(signals)})"))

    from cli.dr_report_cmd import add_report_command

    add_report_command(group)
    app.add_typer(group, name="dr")
