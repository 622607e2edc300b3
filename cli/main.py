"""The ``gridctl`` command: a thin shell that parses, wires components and prints.

Each command group lives in its own module exposing ``register(app)``, which adds its
command (``run``) or command group (``dr send|cancel|list``); a module is imported only
when the command line names it, so ``gridctl migrate`` never imports the OCPP stack.
A group whose module is not there yet answers with one line and a non-zero exit.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from typing import Annotated

import typer

#: command group -> (module, help)
GROUPS: dict[str, tuple[str, str]] = {
    "migrate": ("cli.migrate_cmd", "Apply, plan, verify and lint the SQL migrations."),
    "run": ("cli.run_cmd", "Run gateway, DR bridge and (embedded) engine."),
    "gateway": ("cli.gateway_cmd", "One OCPP gateway worker on Kafka (of several on a port)."),
    "demo": ("cli.demo_cmd", "Everything embedded plus a simulated fleet and a DR event."),
    "simulate": ("cli.simulate_cmd", "A fleet of real OCPP chargers that obey profiles."),
    "dr": ("cli.dr_cmd", "Send, cancel and list demand-response signals."),
    "stations": ("cli.stations_cmd", "Import and list stations."),
    "replay": ("cli.replay_cmd", "Replay recorded events through the pipeline on a virtual clock."),
    "status": ("cli.status_cmd", "Zones, loads, caps, active signals and alerts."),
    "query": ("cli.query_cmd", "Run a NOC query from sql/."),
    "contracts": ("cli.contracts_cmd", "Print the JSON Schema of each topic."),
}

app = typer.Typer(
    name="gridctl",
    help="Demand-response controller for EV charging.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("gridctl")
    except PackageNotFoundError:  # run from a checkout without installing
        return "unknown (not installed)"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"gridctl {version()}")
        raise typer.Exit()


@app.callback()
def _root(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version."
        ),
    ] = False,
    config: Annotated[
        str | None,
        typer.Option(
            "--config",
            help="Defaults for any option (TOML); default ./gridctl.toml. Before the command.",
        ),
    ] = None,
) -> None:
    """Demand-response controller for EV charging."""


def _not_available(target: typer.Typer, name: str) -> None:
    @target.command(
        name,
        help=f"{GROUPS[name][1]} (not available yet)",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
        add_help_option=False,
    )
    def _missing() -> None:
        typer.echo(f"gridctl {name}: not available yet", err=True)
        raise typer.Exit(2)


def _register(target: typer.Typer, name: str) -> None:
    """Call the module's ``register(app)``, which adds its command or command group."""
    module_name = GROUPS[name][0]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        _not_available(target, name)
        return
    module.register(target)


def build(argv: list[str]) -> typer.Typer:
    """Register every group; import only the one named on the command line."""
    wanted = next((a for a in argv if not a.startswith("-")), None)
    for name, (_, help_text) in GROUPS.items():
        if name == wanted:
            _register(app, name)
        else:
            app.command(
                name,
                help=help_text,
                context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
            )(lambda: None)
    return app


def _words() -> list[str]:
    """The command line, or during shell completion the words typed so far (the shell
    calls ``gridctl`` without arguments and passes them in the environment)."""
    import os
    import shlex

    typed = os.environ.get("_TYPER_COMPLETE_ARGS") or os.environ.get("COMP_WORDS")
    if typed and os.environ.get("_GRIDCTL_COMPLETE"):
        with contextlib.suppress(ValueError):
            return shlex.split(typed)[1:]
    return sys.argv[1:]


def main() -> None:
    from cli.config import ConfigError, config_path, default_map, load, split_config_flag

    try:
        flag, words = split_config_flag(_words())
        command = typer.main.get_command(build(words))
        path = config_path(flag)
        defaults = default_map(command, load(path), path) if path else None
    except ConfigError as exc:
        typer.echo(f"gridctl: {exc}", err=True)
        raise SystemExit(2) from None
    if flag is not None:
        sys.argv = [sys.argv[0], *words]
    command(default_map=defaults)


if __name__ == "__main__":
    main()
