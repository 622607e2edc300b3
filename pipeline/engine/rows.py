"""Pure cores of ingest and sinks: records in, rows and decisions out, no I/O.

Ingest: a bus record becomes a row of its source table (columns matched by name, exactly
then case-insensitively, as RisingWave matches JSON keys), or a skip with a reason.
Sinks: the rows a sink's view returns now, compared with what it emitted before, give the
records to publish (changed values, tombstones for vanished keys, new append-only rows).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgspec

from pipeline import contracts
from pipeline.engine.catalog import Sink, Source


class Skip(Exception):
    """A record that cannot become a row; ``reason`` is a short label for metrics."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        super().__init__(detail)


def model_for(topic: str) -> type[msgspec.Struct] | None:
    """The contract of a topic, also when the deployment prefixes topic names."""
    if topic in contracts.MODELS:
        return contracts.MODELS[topic]
    for name, model in contracts.MODELS.items():
        if topic.endswith("." + name) or topic.endswith(name):
            return model
    return None


def decode_fields(topic: str, value: bytes) -> dict[str, Any]:
    """Validate ``value`` against the topic's contract; its fields by lower-case name."""
    model = model_for(topic)
    try:
        if model is None:
            data = json.loads(value)
            if not isinstance(data, dict):
                raise Skip("not_object", "value is not a JSON object")
        else:
            data = msgspec.structs.asdict(contracts.decode(model, value, topic=topic))
    except contracts.ContractError as exc:
        raise Skip("contract", str(exc)) from exc
    except ValueError as exc:
        raise Skip("json", str(exc)) from exc
    return {k.lower(): v for k, v in data.items()}


def to_row(source: Source, key: str | None, fields: Mapping[str, Any]) -> tuple[Any, ...]:
    """The row of ``source`` for one decoded record (missing fields are NULL)."""
    row: list[Any] = []
    for name, _type in source.columns:
        if name == source.key_column:
            row.append(None if key is None else key.encode())
        else:
            row.append(fields.get(name))
    return tuple(row)


# -- sinks ---------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return value.isoformat()
        text = value.astimezone(UTC).isoformat()
        return text.removesuffix("+00:00") + "Z"
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes | memoryview):
        return bytes(value).decode("utf-8", "replace")
    return value


def encode_row(row: Mapping[str, Any]) -> str:
    """A sink row as compact JSON (timestamps RFC 3339 with Z, NUMERIC as numbers)."""
    return json.dumps({k: _jsonable(v) for k, v in row.items()}, separators=(",", ":"))


def row_key(sink: Sink, row: Mapping[str, Any], value: str) -> str:
    """The bus key of a sink row: the primary key's value (one column) or a JSON object of
    them; a digest of the whole row for append-only sinks without a primary key."""
    if not sink.primary_key:
        return hashlib.sha1(value.encode()).hexdigest()
    if len(sink.primary_key) == 1:
        v = _jsonable(row.get(sink.primary_key[0]))
        return "" if v is None else str(v)
    obj = {c: _jsonable(row.get(c)) for c in sink.primary_key}
    return json.dumps(obj, separators=(",", ":"))


@dataclass(frozen=True)
class Emit:
    """One record a sink sends: ``value None`` is a tombstone."""

    topic: str
    key: str
    value: str | None


def sink_query(sink: Sink) -> str:
    """SQL returning ``(key, value)`` per row of the sink's view, both as JSON text built by
    PostgreSQL (``row_to_json``: timestamps RFC 3339 in the session's UTC, numbers as
    numbers), so the tick does not decode and re-encode every row in Python."""
    cols = ", ".join(f'v."{c}"' for c in sink.primary_key)
    if not sink.primary_key:
        key = "md5(row_to_json(v)::text)"
    elif len(sink.primary_key) == 1:
        key = f"COALESCE(v.\"{sink.primary_key[0]}\"::text, '')"
    else:
        key = f"(SELECT row_to_json(k) FROM (SELECT {cols}) AS k)::text"
    return f"SELECT {key} AS key, row_to_json(v)::text AS value FROM {sink.view_name} AS v"


def diff(
    sink: Sink, rows: Iterable[Mapping[str, Any]], state: Mapping[str, str | None]
) -> tuple[list[Emit], dict[str, str | None]]:
    """:func:`diff_encoded` for rows as dicts (encoded here)."""
    pairs = []
    for row in rows:
        value = encode_row(row)
        pairs.append((row_key(sink, row, value), value))
    return diff_encoded(sink, pairs, state)


def diff_encoded(
    sink: Sink, pairs: Iterable[tuple[str, str]], state: Mapping[str, str | None]
) -> tuple[list[Emit], dict[str, str | None]]:
    """What ``sink`` must emit given its view's rows now, as ``(key, value)`` JSON texts,
    and its emitted ``state``.

    Returns the records (sorted by key, tombstones included) and the state changes
    (key -> new value; ``None`` for UPSERT keys to forget). Append-only sinks remember a key
    once emitted and never send it again.
    """
    current = dict(pairs)
    emits: list[Emit] = []
    changes: dict[str, str | None] = {}
    if sink.upsert:
        for key in sorted(current):
            if state.get(key) != current[key]:
                emits.append(Emit(sink.topic, key, current[key]))
                changes[key] = current[key]
        for key in sorted(set(state) - set(current)):
            emits.append(Emit(sink.topic, key, None))
            changes[key] = None
    else:
        for key in sorted(current):
            if key not in state:
                emits.append(Emit(sink.topic, key, current[key]))
                changes[key] = current[key]
    return emits, changes
