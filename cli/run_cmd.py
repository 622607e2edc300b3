"""``gridctl run``: gateway + DR bridge + (unless pointed at RisingWave) the embedded engine."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
from pathlib import Path
from typing import Annotated, Any

import psycopg
import typer
from rich.console import Console
from rich.panel import Panel

from cli.durations import duration_option
from cli.logs import setup_logging
from cli.migration_vars import parse_vars
from cli.runtime import Endpoints, RunSettings, Runtime, default_migrations_dir
from pipeline.bus import BusError
from pipeline.migrate.errors import MigrateError


def banner(endpoints: Endpoints) -> Panel:
    lines = [
        f"[b]OCPP[/b]      {endpoints.ocpp_url}  (1.6J and 2.0.1)",
        f"[b]API[/b]       {endpoints.api_url}  (docs: {endpoints.api_url}/docs)",
        f"[b]status[/b]    {endpoints.api_url}/  (asks for the API token)",
    ]
    # Never the token or a password itself: a banner ends up in logs and screenshots.
    if endpoints.token_file:
        lines.append(f"[b]API token[/b] in {endpoints.token_file}")
    else:
        lines.append("[b]API token[/b] as configured (--api-tokens / GRIDCTL_API_TOKENS)")
    if endpoints.database_url:
        lines.append(f"[b]Postgres[/b]  psql '{endpoints.database_url}'")
    if endpoints.database_password_file:
        lines.append(f"          read-only; password in {endpoints.database_password_file} (0600)")
    lines.append(f"[b]engine[/b]    {endpoints.engine}    [b]bus[/b] {endpoints.bus}")
    return Panel("\n".join(lines), title="gridctl is running", subtitle="Ctrl-C stops")


async def serve(settings: RunSettings, console: Console) -> None:
    runtime = Runtime(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        endpoints = await runtime.start()
        console.print(banner(endpoints))
        await stop.wait()
        console.print("stopping…")
    finally:
        await runtime.stop()


def run(
    data_dir: Annotated[Path, typer.Option(envvar="GRIDCTL_DATA_DIR")] = Path(".gridctl"),
    engine: Annotated[str, typer.Option(envvar="GRIDCTL_ENGINE", help="embedded | risingwave")] = (
        "embedded"
    ),
    database_url: Annotated[str | None, typer.Option(envvar="GRIDCTL_DATABASE_URL")] = None,
    bus: Annotated[str, typer.Option(envvar="GRIDCTL_BUS", help="local | kafka")] = "local",
    kafka_bootstrap: Annotated[str | None, typer.Option(envvar="GRIDCTL_KAFKA_BOOTSTRAP")] = None,
    kafka_config: Annotated[
        list[str] | None, typer.Option("--kafka-config", help="librdkafka NAME=VALUE")
    ] = None,
    host: Annotated[str, typer.Option(envvar="GRIDCTL_HOST")] = "127.0.0.1",
    ocpp_port: Annotated[int, typer.Option(envvar="GRIDCTL_OCPP_PORT")] = 9000,
    api_port: Annotated[int, typer.Option(envvar="GRIDCTL_API_PORT")] = 8080,
    pg_port: Annotated[int, typer.Option(envvar="GRIDCTL_PG_PORT")] = 54329,
    tick: Annotated[
        str,
        typer.Option(
            envvar="GRIDCTL_TICK",
            help="Engine tick: 1s, 500ms.",
            callback=duration_option("--tick", minimum=0.01),
        ),
    ] = "1s",
    tls_cert: Annotated[
        Path | None,
        typer.Option(
            envvar="GRIDCTL_TLS_CERT", help="serve wss:// (profile 2)", exists=True, dir_okay=False
        ),
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option(envvar="GRIDCTL_TLS_KEY", exists=True, dir_okay=False)
    ] = None,
    allow_unknown_stations: Annotated[
        bool, typer.Option(envvar="GRIDCTL_ALLOW_UNKNOWN_STATIONS")
    ] = False,
    api_tokens: Annotated[
        str | None, typer.Option(envvar="GRIDCTL_API_TOKENS", help="comma-separated tokens")
    ] = None,
    migrations: Annotated[Path | None, typer.Option(envvar="GRIDCTL_MIGRATIONS")] = None,
    var: Annotated[list[str] | None, typer.Option("--var", help="migration NAME=VALUE")] = None,
    openadr2_vtn_url: Annotated[str | None, typer.Option(envvar="GRIDCTL_OPENADR2_VTN_URL")] = None,
    openadr2_ven_name: Annotated[str | None, typer.Option(envvar="GRIDCTL_OPENADR2_VEN_NAME")] = (
        None
    ),
    openadr3_vtn_url: Annotated[str | None, typer.Option(envvar="GRIDCTL_OPENADR3_VTN_URL")] = None,
    openadr3_client_id: Annotated[
        str | None, typer.Option(envvar="GRIDCTL_OPENADR3_CLIENT_ID", help="OAuth2 client id")
    ] = None,
    openadr3_client_secret_file: Annotated[
        Path | None,
        typer.Option(
            envvar="GRIDCTL_OPENADR3_CLIENT_SECRET_FILE",
            help="file holding the OAuth2 client secret (or set GRIDCTL_OPENADR3_CLIENT_SECRET)",
        ),
    ] = None,
    openadr3_token_url: Annotated[
        str | None, typer.Option(envvar="GRIDCTL_OPENADR3_TOKEN_URL", help="default VTN/auth/token")
    ] = None,
    openadr3_token_auth: Annotated[
        str, typer.Option(envvar="GRIDCTL_OPENADR3_TOKEN_AUTH", help="form (the spec) | basic")
    ] = "form",
    openadr3_ven_name: Annotated[
        str, typer.Option(envvar="GRIDCTL_OPENADR3_VEN_NAME", help="our VEN's name on the VTN")
    ] = "gridctl",
    openadr3_version: Annotated[
        str, typer.Option(envvar="GRIDCTL_OPENADR3_VERSION", help="3.0.1 | 3.1.0")
    ] = "3.0.1",
    openadr3_poll_interval: Annotated[
        str,
        typer.Option(
            envvar="GRIDCTL_OPENADR3_POLL_INTERVAL",
            help="time between polls: 30s, 1m",
            callback=duration_option("--openadr3-poll-interval", minimum=0.1),
        ),
    ] = "30s",
    openadr3_callback_url: Annotated[
        str | None,
        typer.Option(
            envvar="GRIDCTL_OPENADR3_CALLBACK_URL",
            help="URL where the VTN reaches our /v1/openadr3/notifications (subscriptions)",
        ),
    ] = None,
    openadr3_priority: Annotated[
        int, typer.Option(envvar="GRIDCTL_OPENADR3_PRIORITY", help="program class 1-3")
    ] = 2,
    max_clock_skew: Annotated[
        str,
        typer.Option(
            envvar="GRIDCTL_MAX_CLOCK_SKEW",
            help="how far behind ours a charger's clock may be (keep it below the "
            "watermark, 10s); beyond, or ahead by over 1s: the received time",
            callback=duration_option("--max-clock-skew"),
        ),
    ] = "5s",
    ocpp_msgs_per_s: Annotated[
        float,
        typer.Option(envvar="GRIDCTL_OCPP_MSGS_PER_S", help="per-charger budget, messages/s"),
    ] = 20.0,
    ocpp_bytes_per_s: Annotated[
        float, typer.Option(envvar="GRIDCTL_OCPP_BYTES_PER_S", help="per-charger budget, bytes/s")
    ] = 16 * 1024,
    ocpp_max_frame: Annotated[
        int, typer.Option(envvar="GRIDCTL_OCPP_MAX_FRAME", help="largest OCPP frame, bytes")
    ] = 64 * 1024,
    gateway_workers: Annotated[
        int | None,
        typer.Option(
            envvar="GRIDCTL_GATEWAY_WORKERS",
            help="gateway processes sharing the OCPP port (SO_REUSEPORT), meeting the engine "
            "on Kafka; default one per core with --bus kafka, else 1 (more than 1 without "
            "--bus kafka starts the embedded Tansu broker, which keeps the bus in memory)",
        ),
    ] = None,
    log_level: Annotated[str, typer.Option(envvar="GRIDCTL_LOG_LEVEL")] = "INFO",
    log_format: Annotated[
        str, typer.Option(envvar="GRIDCTL_LOG_FORMAT", help="text | json (one object a line)")
    ] = "text",
) -> None:
    """Run the controller: OCPP gateway, DR API and bridge, and the embedded engine."""
    if engine not in ("embedded", "risingwave"):
        raise typer.BadParameter("embedded or risingwave", param_hint="--engine")
    if bus not in ("local", "kafka"):
        raise typer.BadParameter("local or kafka", param_hint="--bus")
    if engine == "risingwave" and not database_url:
        raise typer.BadParameter("--engine risingwave needs --database-url", param_hint="--engine")
    if engine == "risingwave" and bus == "local":
        raise typer.BadParameter(
            "--engine risingwave reads Kafka, not the in-process bus: add --bus kafka "
            "--kafka-bootstrap HOST:PORT",
            param_hint="--engine",
        )
    if log_format not in ("text", "json"):
        raise typer.BadParameter("text or json", param_hint="--log-format")
    if (tls_cert is None) != (tls_key is None):
        raise typer.BadParameter("give both --tls-cert and --tls-key", param_hint="--tls-cert")
    if openadr3_token_auth not in ("form", "basic"):
        raise typer.BadParameter("form or basic", param_hint="--openadr3-token-auth")
    if openadr3_version not in ("3.0.1", "3.1.0"):
        raise typer.BadParameter("3.0.1 or 3.1.0", param_hint="--openadr3-version")
    if not 1 <= openadr3_priority <= 3:
        raise typer.BadParameter("1, 2 or 3", param_hint="--openadr3-priority")
    if bus == "kafka" and not kafka_bootstrap:
        raise typer.BadParameter("--bus kafka needs --kafka-bootstrap", param_hint="--bus")
    workers = _gateway_workers(gateway_workers, bus)
    try:
        setup_logging(log_level, log_format)  # type: ignore[arg-type]
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--log-level") from None
    migrations_dir = migrations or default_migrations_dir()
    settings = RunSettings(
        data_dir=data_dir,
        engine=engine,  # type: ignore[arg-type]
        database_url=database_url,
        bus=bus,  # type: ignore[arg-type]
        kafka_bootstrap=kafka_bootstrap,
        kafka_config=dict(parse_vars(kafka_config, None, "--kafka-config")),
        host=host,
        ocpp_port=ocpp_port,
        api_port=api_port,
        pg_port=pg_port,
        tick=float(tick),
        allow_unknown_stations=allow_unknown_stations,
        api_tokens=[t for t in (api_tokens or "").split(",") if t],
        migrations_dir=migrations_dir,
        migration_vars=parse_vars(var, migrations_dir),
        openadr2_vtn_url=openadr2_vtn_url,
        openadr2_ven_name=openadr2_ven_name,
        openadr3_vtn_url=openadr3_vtn_url,
        openadr_options={
            "openadr3_client_id": openadr3_client_id,
            "openadr3_client_secret_file": (
                str(openadr3_client_secret_file) if openadr3_client_secret_file else None
            ),
            "openadr3_token_url": openadr3_token_url,
            "openadr3_token_auth": openadr3_token_auth,
            "openadr3_ven_name": openadr3_ven_name,
            "openadr3_version": openadr3_version,
            "openadr3_poll_interval_s": float(openadr3_poll_interval),
            "openadr3_priority": openadr3_priority,
            "openadr3_callback_url": openadr3_callback_url,
        },
        gateway_options={
            **(
                {"certfile": str(tls_cert), "keyfile": str(tls_key)} if tls_cert and tls_key else {}
            ),
            "max_clock_skew_s": float(max_clock_skew),
            "budget_msgs_per_s": ocpp_msgs_per_s,
            "budget_bytes_per_s": ocpp_bytes_per_s,
            "max_size": ocpp_max_frame,
            # the bursts follow the rates (4 s worth), never below one frame
            "budget_msgs_burst": 4 * ocpp_msgs_per_s,
            "budget_bytes_burst": max(4 * ocpp_bytes_per_s, ocpp_max_frame),
        },
        gateway_workers=workers,
        log_level=log_level,
        log_format=log_format,
    )
    _check_gateway_options(settings.gateway_options)
    try:
        asyncio.run(serve(settings, Console()))
    except (OSError, RuntimeError, ValueError, MigrateError, BusError, psycopg.Error) as exc:
        # A port in use, a database or broker out of reach, a bad migration: say which,
        # in one line; everything started so far has been stopped by serve().
        typer.echo(f"gridctl run: cannot start: {exc}", err=True)
        raise typer.Exit(1) from None


def _gateway_workers(asked: int | None, bus: str) -> int:
    """How many gateway processes: as asked, else one per core on Kafka, else 1.

    The in-process bus's log is what makes an acknowledged reading durable on one machine;
    the embedded broker that several workers need keeps records in memory, so it is used
    only when asked for.
    """
    if asked is None:
        return (os.cpu_count() or 1) if bus == "kafka" else 1
    if asked < 1:
        raise typer.BadParameter("at least 1", param_hint="--gateway-workers")
    if asked > 1 and not hasattr(socket, "SO_REUSEPORT"):
        raise typer.BadParameter(
            "several workers share the port with SO_REUSEPORT, which this OS lacks: run one "
            "`gridctl gateway` per port behind a TCP load balancer (docs/operations.md)",
            param_hint="--gateway-workers",
        )
    if asked > 1 and bus == "local":
        from pipeline.bus.tansu import TansuError, find_tansu

        try:
            find_tansu()
        except TansuError as exc:
            raise typer.BadParameter(
                f"{exc}; or give --bus kafka --kafka-bootstrap HOST:PORT",
                param_hint="--gateway-workers",
            ) from None
    return asked


def _check_gateway_options(options: dict[str, Any]) -> None:
    """Refuse gateway settings that cannot work before anything starts."""
    from ocpp_gateway import ConfigError, GatewayConfig

    try:
        GatewayConfig(**options)
    except ConfigError as exc:
        hint = "--max-clock-skew / --ocpp-msgs-per-s / --ocpp-bytes-per-s / --ocpp-max-frame"
        raise typer.BadParameter(str(exc), param_hint=hint) from None


def register(app: typer.Typer) -> None:
    app.command("run")(run)
