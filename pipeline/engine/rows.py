"""Pure cores of ingest and sinks: records in, rows and decisions out, no I/O.

Ingest: a bus record becomes a row of its source table (columns matched by name, exactly
then case-insensitively, as RisingWave matches JSON keys), or a skip with a reason.
Sinks: the SQL that compares a sink's view with what it emitted before, in PostgreSQL, and
returns the records to publish (changed values, tombstones for vanished keys, new
append-only rows).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
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


def has_field(value: bytes, name: str) -> bool:
    """Whether the JSON object ``value`` has key ``name`` (case-insensitively, as matched)."""
    try:
        data = json.loads(value)
    except ValueError:
        return False
    return isinstance(data, dict) and any(k.lower() == name for k in data)


def is_late(ts: object, watermark: datetime | None) -> bool:
    """RisingWave's watermark filter (``executor/watermark_filter.rs``, v3.0.2): once a
    source has a watermark, a row passes only if its watermark column is ``>=`` it; a NULL
    column fails the comparison and is dropped. Before the first watermark every row passes.
    The watermark is advanced after each chunk (here: each ingest batch), so rows of one
    batch are not filtered against each other."""
    if watermark is None:
        return False
    return not isinstance(ts, datetime) or ts < watermark


def newer_version(old: object, new: object) -> bool:
    """``ON CONFLICT OVERWRITE WITH VERSION COLUMN``: does ``new`` replace ``old``?
    RisingWave compares versions with NULLs first and overwrites on equal
    (``mview/cache.rs``, ``versions_are_newer_or_equal``)."""
    if old is None:
        return True
    if new is None:
        return False
    return bool(new >= old)  # type: ignore[operator]


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


@dataclass(frozen=True)
class Emit:
    """One record a sink sends: ``value None`` is a tombstone."""

    topic: str
    key: str
    value: str | None


def sink_key_sql(sink: Sink) -> str:
    """The key text of a row ``v`` of a sink's view, as the sink emits it."""
    cols = ", ".join(f'v."{c}"' for c in sink.primary_key)
    if not sink.primary_key:
        key = "md5(row_to_json(v)::text)"
    elif len(sink.primary_key) == 1:
        key = f"COALESCE(v.\"{sink.primary_key[0]}\"::text, '')"
    else:
        key = f"(SELECT row_to_json(k) FROM (SELECT {cols}) AS k)::text"
    return f"replace({key}, '+00:00\"', 'Z\"')"


def sink_apply_sql(sink: Sink) -> str:
    """One statement that applies what ``sink`` must emit now, set-based, in PostgreSQL:
    the changes (:func:`sink_query`, one per key) update ``gridctl_engine.sink_state``
    (a tombstone deletes the key) and are appended to ``gridctl_engine.outbox`` in key
    order; it returns the outbox rows (``seq, key, value``) to publish. Parameters
    ``%(sink)s``, ``%(topic)s``, ``%(now)s``. Ten thousand changed commands are a few
    set operations, not ten thousand round trips."""
    state = "gridctl_engine.sink_state"
    return (
        # A view that breaks its own primary key gives a key twice: one row per key (any
        # one of them, as before, when the last of the ordered rows won).
        f"WITH diff AS MATERIALIZED (SELECT DISTINCT ON (key) key, value FROM "
        f"({sink_query(sink)}) AS d ORDER BY key), "
        f"gone AS (DELETE FROM {state} AS s USING diff AS d WHERE s.sink = %(sink)s "
        "AND s.key = d.key AND d.value IS NULL), "
        f"kept AS (INSERT INTO {state} (sink, key, value, emitted_at) "
        "SELECT %(sink)s, key, value, %(now)s FROM diff WHERE value IS NOT NULL "
        "ON CONFLICT (sink, key) DO UPDATE SET value = EXCLUDED.value, "
        "emitted_at = EXCLUDED.emitted_at) "
        "INSERT INTO gridctl_engine.outbox (topic, key, value, ts) "
        "SELECT %(topic)s, key, value, %(now)s FROM diff ORDER BY key "
        "RETURNING seq, key, value"
    )


def sink_query(sink: Sink) -> str:
    """SQL returning what ``sink`` must emit now, as ``(key, value)`` JSON texts, in key order.

    The view's rows are encoded by PostgreSQL (``row_to_json``; timestamps RFC 3339 with Z
    given a UTC session, numbers as numbers) and compared there with the emitted state in
    ``gridctl_engine.sink_state`` (parameter ``%(sink)s``), so only changes cross the wire:
    UPSERT sinks get changed rows and, for keys that vanished, ``value`` NULL (tombstones);
    append-only sinks get rows whose key was never emitted.
    """
    utc = "'+00:00\"', 'Z\"'"
    cur = (
        f"SELECT {sink_key_sql(sink)} AS key, replace(row_to_json(v)::text, {utc}) AS value "
        f"FROM {sink.relation} AS v"
    )
    state = "SELECT key, value FROM gridctl_engine.sink_state WHERE sink = %(sink)s"
    if sink.upsert:
        return (
            f"SELECT COALESCE(c.key, s.key) AS key, c.value FROM ({cur}) AS c "
            f"FULL JOIN ({state}) AS s ON s.key = c.key "
            "WHERE c.value IS DISTINCT FROM s.value ORDER BY 1"
        )
    return (
        f"SELECT c.key, c.value FROM ({cur}) AS c WHERE NOT EXISTS "
        f"(SELECT 1 FROM gridctl_engine.sink_state AS s WHERE s.sink = %(sink)s "
        "AND s.key = c.key) ORDER BY 1"
    )
