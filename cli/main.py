"""The ``gridctl`` command: a thin shell that parses, wires components and prints.

Each command group lives in its own module exposing ``register(app)``, which adds its
command (``run``) or command group (``dr send|cancel|list``); a module is imported only
when the command line names it, so ``gridctl migrate`` never imports the OCPP stack.
A group whose module is not there yet answers with one line and a non-zero exit.
"""

from __future__ import annotations

import importlib
import sys

import typer

#: command group -> (module, help)
GROUPS: dict[str, tuple[str, str]] = {
    "migrate": ("cli.migrate_cmd", "Apply, plan, verify and lint the SQL migrations."),
    "run": ("cli.run_cmd", "Run gateway, DR bridge and (embedded) engine."),
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
    add_completion=False,
    pretty_exceptions_enable=False,
)


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


def main() -> None:
    build(sys.argv[1:])()


if __name__ == "__main__":
    main()
