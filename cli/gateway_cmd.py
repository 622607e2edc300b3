"""``gridctl gateway``: one OCPP gateway process on Kafka, one of several sharing a port.

What ``gridctl run --gateway-workers N`` starts N times (``cli.workers``), and what runs on
each machine of a fleet behind a TCP load balancer (docs/operations.md). It holds only the
chargers connected to it: it reads the whole command topic and applies each command only
to a station it holds (another process holds the others), publishes readings, results and
status on the bus, and nothing else. The bus must be Kafka: the processes meet only there.

Prints one line ``READY <port>`` on stdout once it listens (logs go to stderr), so a
parent knows when every worker is up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from pathlib import Path
from typing import Annotated, Any

import typer

from cli import gc_settings
from cli.logs import setup_logging
from cli.migration_vars import parse_vars
from pipeline.bus import BusError


def gateway_options(pairs: list[str] | None) -> dict[str, Any]:
    """``--gateway-option NAME=VALUE`` pairs; a value is JSON when it parses as JSON."""
    out: dict[str, Any] = {}
    for name, text in parse_vars(pairs, None, "--gateway-option").items():
        try:
            out[name] = json.loads(text)
        except ValueError:
            out[name] = text
    return out


async def _parent_gone(stop: asyncio.Event) -> None:
    """Stop when the process that started us is gone (``run`` killed with -9): a worker
    must not hold the port and chargers for a controller that no longer exists."""
    parent = os.getppid()
    while os.getppid() == parent:
        await asyncio.sleep(1.0)
    stop.set()


async def serve(
    bootstrap: str,
    kafka_config: dict[str, str],
    topic_prefix: str,
    options: dict[str, Any],
    watch_parent: bool = False,
) -> None:
    from ocpp_gateway import Gateway, GatewayConfig
    from pipeline.bus import KafkaBus
    from pipeline.bus.prefixed import with_prefix

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    watcher = asyncio.create_task(_parent_gone(stop)) if watch_parent else None
    bus = with_prefix(KafkaBus(bootstrap, config=dict(kafka_config)), topic_prefix)
    await bus.start()
    gateway = Gateway(bus, GatewayConfig(**options))
    try:
        await gateway.start()
        gc_settings.settle()  # as gridctl run does (cli/gc_settings.py)
        print(f"READY {gateway.port}", flush=True)
        await stop.wait()
    finally:
        if watcher is not None:
            watcher.cancel()
        with contextlib.suppress(Exception):
            await gateway.stop()
        await bus.stop()


def gateway(
    kafka_bootstrap: Annotated[
        str, typer.Option(envvar="GRIDCTL_KAFKA_BOOTSTRAP", help="HOST:PORT of the brokers")
    ],
    kafka_config: Annotated[
        list[str] | None, typer.Option("--kafka-config", help="librdkafka NAME=VALUE")
    ] = None,
    host: Annotated[str, typer.Option(envvar="GRIDCTL_HOST")] = "127.0.0.1",
    ocpp_port: Annotated[int, typer.Option(envvar="GRIDCTL_OCPP_PORT")] = 9000,
    reuse_port: Annotated[
        bool, typer.Option(help="share the port with the other workers (SO_REUSEPORT)")
    ] = True,
    worker_index: Annotated[int, typer.Option(help="this worker's index, 0 .. workers-1")] = 0,
    workers: Annotated[int, typer.Option(help="how many workers share the port")] = 1,
    instance: Annotated[
        str | None, typer.Option(help="name in ocpp.station_status (default w<index>)")
    ] = None,
    data_dir: Annotated[Path, typer.Option(envvar="GRIDCTL_DATA_DIR")] = Path(".gridctl"),
    topic_prefix: Annotated[str, typer.Option(envvar="GRIDCTL_TOPIC_PREFIX")] = "",
    allow_unknown_stations: Annotated[
        bool, typer.Option(envvar="GRIDCTL_ALLOW_UNKNOWN_STATIONS")
    ] = False,
    api_tokens: Annotated[
        str | None,
        typer.Option(envvar="GRIDCTL_API_TOKENS", help="bearer tokens that may read /metrics"),
    ] = None,
    gateway_option: Annotated[
        list[str] | None,
        typer.Option("--gateway-option", help="a GatewayConfig field NAME=VALUE (JSON value)"),
    ] = None,
    watch_parent: Annotated[
        bool, typer.Option(help="stop when the starting process is gone (gridctl run)")
    ] = False,
    log_level: Annotated[str, typer.Option(envvar="GRIDCTL_LOG_LEVEL")] = "INFO",
    log_format: Annotated[str, typer.Option(envvar="GRIDCTL_LOG_FORMAT")] = "text",
) -> None:
    """One OCPP gateway worker on Kafka (several share a port; see docs/operations.md)."""
    from ocpp_gateway import ConfigError, GatewayConfig

    if workers < 1:
        raise typer.BadParameter("at least 1", param_hint="--workers")
    if not 0 <= worker_index < workers:
        raise typer.BadParameter(f"0 .. {workers - 1} (--workers {workers})",
                                 param_hint="--worker-index")  # fmt: skip
    if log_format not in ("text", "json"):
        raise typer.BadParameter("text or json", param_hint="--log-format")
    try:
        setup_logging(log_level, log_format)  # type: ignore[arg-type]
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--log-level") from None
    state_dir = data_dir / "gateway" / (instance or f"w{worker_index}")
    options: dict[str, Any] = {
        # the other workers hold the stations this one does not, so one worker (0) says
        # which are offline, after asking the status topic who holds them
        "report_offline": worker_index == 0,
        **gateway_options(gateway_option),
        "host": host,
        "port": ocpp_port,
        "reuse_port": reuse_port,
        "worker_index": worker_index,
        "workers": workers,
        "instance": instance,
        "allow_unknown_stations": allow_unknown_stations,
        "metrics_tokens": tuple(t for t in (api_tokens or "").split(",") if t),
        "state_dir": str(state_dir),
    }
    try:
        GatewayConfig(**options)
    except (ConfigError, TypeError) as exc:
        raise typer.BadParameter(str(exc), param_hint="--gateway-option") from None
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        asyncio.run(
            serve(
                kafka_bootstrap,
                parse_vars(kafka_config, None, "--kafka-config"),
                topic_prefix,
                options,
                watch_parent,
            )
        )
    except (OSError, RuntimeError, ValueError, BusError) as exc:
        typer.echo(f"gridctl gateway: cannot start: {exc}", err=True)
        raise typer.Exit(1) from None


def register(app: typer.Typer) -> None:
    app.command("gateway")(gateway)
