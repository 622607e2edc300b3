"""``gridctl simulate``: a fleet of real OCPP chargers that obey charging profiles.

Thin: parses flags, builds a :class:`simulator.Fleet`, prints a summary line every few
seconds and a final summary. Everything it prints comes from the fleet's Python API,
which the demo and the benchmarks use directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from pathlib import Path
from typing import Annotated

import typer

from cli.durations import duration_option
from cli.durations import parse_duration as _seconds


def _duration(text: str, option: str) -> float:
    try:
        return _seconds(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from None


def register(app: typer.Typer) -> None:
    app.command("simulate", help="A fleet of real OCPP chargers that obey charging profiles.")(
        simulate
    )


def simulate(
    url: Annotated[
        str,
        typer.Option(
            help="Gateway URL; the station id is appended (or fills {station_id}).",
            envvar="GRIDCTL_OCPP_URL",
        ),
    ] = "ws://127.0.0.1:9000/ocpp",
    chargers: Annotated[int, typer.Option(help="Number of chargers.", min=1)] = 10,
    zones: Annotated[int, typer.Option(help="Zones, assigned round-robin.", min=1)] = 1,
    interval: Annotated[str, typer.Option(help="MeterValues interval (10s, 500ms).")] = "10s",
    ratio_201: Annotated[
        float, typer.Option("--ratio-201", help="Share of OCPP 2.0.1 chargers.", min=0, max=1)
    ] = 0.5,
    duration: Annotated[
        str | None, typer.Option(help="Stop after this long (default: until Ctrl-C).")
    ] = None,
    password_file: Annotated[
        Path | None,
        typer.Option(help="One shared password, or station_id,password lines."),
    ] = None,
    stations_csv: Annotated[
        Path | None,
        typer.Option(help="Simulate the stations of this CSV (stations import format)."),
    ] = None,
    export_stations: Annotated[
        Path | None,
        typer.Option(help="Write the generated stations as CSV (for `stations import`) and exit."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Same seed, same fleet and same sessions.")] = 0,
    reject_max_profile_fraction: Annotated[
        float,
        typer.Option(help="Share of chargers refusing ChargePointMaxProfile.", min=0, max=1),
    ] = 0.0,
    occupancy: Annotated[
        float, typer.Option(help="Share of chargers with a car plugged in at start.", min=0, max=1)
    ] = 0.8,
    ramp_up: Annotated[
        str | None, typer.Option(help="Spread connects over this long (default: 200/s).")
    ] = None,
    summary_every: Annotated[
        str,
        typer.Option(
            help="Summary line period (5s, 1m).",
            callback=duration_option("--summary-every", minimum=0.1),
        ),
    ] = "5s",
    report_on_change: Annotated[
        bool,
        typer.Option(help="Send a sample as soon as a new limit changes the draw."),
    ] = True,
    ca_file: Annotated[
        Path | None, typer.Option(help="CA certificate to trust for wss:// (security profile 2).")
    ] = None,
    validate: Annotated[
        bool,
        typer.Option(help="Schema-validate our calls and the answers (off: cheaper load)."),
    ] = True,
    json_summary: Annotated[
        bool, typer.Option("--json", help="Print the final summary as JSON.")
    ] = False,
) -> None:
    from simulator import ChargerSettings, ConfigError, Fleet, FleetConfig, SessionMix
    from simulator import stations as st

    try:
        if stations_csv is not None:
            specs = st.read_csv(
                stations_csv,
                seed=seed,
                ratio_201=ratio_201,
                reject_max_profile_fraction=reject_max_profile_fraction,
            )
        else:
            specs = st.generate(
                chargers,
                zones=zones,
                seed=seed,
                ratio_201=ratio_201,
                reject_max_profile_fraction=reject_max_profile_fraction,
            )
        if password_file is not None:
            specs = st.apply_passwords(specs, password_file)
    except (ConfigError, OSError) as exc:
        typer.echo(f"gridctl simulate: {exc}", err=True)
        raise typer.Exit(2) from exc

    if export_stations is not None:
        st.write_csv(specs, export_stations)
        typer.echo(f"wrote {len(specs)} stations to {export_stations}")
        return

    settings = ChargerSettings(
        meter_interval=_duration(interval, "--interval"),
        seed=seed,
        validate=validate,
        report_on_change=report_on_change,
        mix=SessionMix(occupancy=occupancy),
    )
    config = FleetConfig(
        url=url,
        chargers=chargers if stations_csv is None else len(specs),
        seed=seed,
        stations=specs,
        settings=settings,
        ramp_up=_duration(ramp_up, "--ramp-up") if ramp_up else None,
        ca_file=str(ca_file) if ca_file else None,
    )
    stop_after = _duration(duration, "--duration") if duration else None
    every = float(summary_every)
    try:
        fleet = Fleet(config)
    except (ConfigError, OSError) as exc:  # ssl.SSLError is an OSError
        typer.echo(f"gridctl simulate: {exc}", err=True)
        raise typer.Exit(2) from exc
    summary = asyncio.run(_run(fleet, stop_after, every))
    if json_summary:
        typer.echo(json.dumps(summary, sort_keys=True))
    else:
        typer.echo("final: " + " ".join(f"{k}={v}" for k, v in summary.items()))
    if not summary["connects"] and summary["connect_failures"]:
        # Every charger was turned away: say why and what to do, and fail the run.
        typer.echo(
            f"gridctl simulate: no charger was accepted ({summary['connect_failures']}); "
            "unknown stations are refused: export and import them first "
            "(gridctl simulate --export-stations stations.csv; "
            "gridctl stations import stations.csv)",
            err=True,
        )
        raise typer.Exit(1)


async def _run(fleet: object, stop_after: float | None, every: float) -> dict[str, object]:
    from simulator import Fleet

    assert isinstance(fleet, Fleet)
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, done.set)
    t0 = time.monotonic()
    await fleet.start()
    typer.echo(
        f"simulating {len(fleet.specs)} chargers against {fleet.config.url} "
        f"(pid {os.getpid()}, seed {fleet.config.seed})"
    )
    try:
        while not done.is_set():
            left = every if stop_after is None else min(every, stop_after - (time.monotonic() - t0))
            if left <= 0:
                break
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await done.wait()
            typer.echo(summary_line(fleet, time.monotonic() - t0))
    finally:
        await fleet.stop()
    snap = fleet.snapshot()
    return {
        "elapsed_s": round(time.monotonic() - t0, 1),
        "chargers": snap.chargers,
        "total_kw": snap.total_kw,
        **fleet.observations.summary(),
    }


def summary_line(fleet: object, elapsed: float) -> str:
    """One line: connections, sessions, load, messages, ack latency, errors, profiles."""
    from simulator import Fleet

    assert isinstance(fleet, Fleet)
    snap = fleet.snapshot()
    obs = fleet.observations
    p50, p99 = obs.ack_latency_ms(50), obs.ack_latency_ms(99)
    errors = sum(obs.call_errors.values()) + sum(obs.timeouts.values())
    ms = "n/a" if p50 is None else f"{p50:.1f}/{p99:.1f}ms"
    return (
        f"t={elapsed:5.0f}s connected={snap.connected}/{snap.chargers} "
        f"sessions={snap.sessions} charging={snap.charging} paused={snap.paused} "
        f"limited={snap.limited} load={snap.total_kw:.1f}kW "
        f"calls={sum(obs.calls.values())} ack_p50/p99={ms} errors={errors} "
        f"set={obs.received['SetChargingProfile']} clear={obs.received['ClearChargingProfile']}"
        + (f" connect_failures={dict(obs.connect_failures)}" if obs.connect_failures else "")
        + (
            " zones: " + " ".join(f"{z}={kw:.1f}kW" for z, kw in snap.zone_kw.items())
            if len(snap.zone_kw) <= 8
            else ""
        )
    )
