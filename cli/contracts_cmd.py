"""``gridctl contracts [TOPIC] [--write DIR]``: the JSON Schema of each topic's records.

The schemas are generated from the msgspec models in :mod:`pipeline.contracts`, so they
cannot drift from what the services accept; ``docs/contracts/`` holds a checked-in copy
for people and tools outside Python (a test keeps it equal to the generated one).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from pipeline import contracts

__all__ = ["register", "schema_path", "schema_text", "write_schemas"]


def schema_text(topic: str) -> str:
    """The schema of ``topic`` as stable, indented JSON with a final newline."""
    return json.dumps(contracts.json_schema(topic), indent=2, ensure_ascii=False) + "\n"


def schema_path(directory: Path, topic: str) -> Path:
    """Where ``topic``'s schema lives in ``directory``: ``<topic>.schema.json``."""
    return directory / f"{topic}.schema.json"


def write_schemas(directory: Path, topics: list[str] | None = None) -> list[Path]:
    """Write one schema file per topic (every topic by default); return the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for topic in topics or list(contracts.MODELS):
        path = schema_path(directory, topic)
        path.write_text(schema_text(topic), encoding="utf-8")
        written.append(path)
    return written


def register(app: typer.Typer) -> None:
    """Add the ``contracts`` command to ``app``."""

    @app.command("contracts", help="Print the JSON Schema of each topic (or write them).")
    def contracts_command(
        topic: Annotated[
            str | None, typer.Argument(help="One topic, e.g. ocpp.meter_values.")
        ] = None,
        write: Annotated[
            Path | None,
            typer.Option("--write", help="Write <topic>.schema.json files into this directory."),
        ] = None,
    ) -> None:
        if topic is not None and topic not in contracts.MODELS:
            known = ", ".join(contracts.MODELS)
            typer.echo(f"unknown topic {topic!r}; topics: {known}", err=True)
            raise typer.Exit(2)
        chosen = [topic] if topic else list(contracts.MODELS)
        if write is not None:
            for path in write_schemas(write, chosen):
                typer.echo(str(path))
            return
        if topic:
            typer.echo(schema_text(topic), nl=False)
        else:
            everything = {t: contracts.json_schema(t) for t in chosen}
            typer.echo(json.dumps(everything, indent=2, ensure_ascii=False))
