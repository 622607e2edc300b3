"""What rebuilding a sink does to its topic, and the reconcile step that keeps it right.

RisingWave forgets a dropped sink. Created again, an UPSERT sink sends its view's whole
snapshot, and never a tombstone for a key that vanished while it was gone: a station whose
signal was restored during a rebuild keeps its limit on the command topic, and the gateway
keeps enforcing it. So after ``migrate up`` (re)creates an UPSERT sink on RisingWave, the
runner reconciles: it reads the topic's live keys (latest value per key not null), reads
the keys the view holds now, and writes a tombstone for every key the topic has and the
view has not. A PLAIN (alert) sink must be created with ``snapshot = 'false'``, or every
historical alert is sent again; :func:`describe` says so in ``migrate plan``.

The embedded engine keeps each sink's emitted state across a rebuild (``sink_state``), so
its next tick sends exactly the difference, tombstones included; it needs no reconcile.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

log = logging.getLogger("gridctl.migrate")


@dataclass(frozen=True)
class SinkFacts:
    """A CREATE SINK as far as a rebuild is concerned."""

    name: str
    view: str | None
    topic: str
    upsert: bool
    primary_key: tuple[str, ...]
    key_text: bool  # KEY ENCODE TEXT: the Kafka key is the bare value
    snapshot: bool  # sends its view's current rows first
    bootstrap: str | None


def sink_facts(text: str) -> SinkFacts | None:
    """Read a CREATE SINK statement (``${var}`` filled); None for other statements."""
    from pipeline.compiler.ddl import parse_sink
    from pipeline.compiler.errors import CompileError

    if not text.lstrip().upper().startswith("CREATE SINK"):
        return None
    try:
        sink = parse_sink(text)
    except CompileError:
        return None
    pk = tuple(c.strip() for c in sink.options.get("primary_key", "").split(",") if c.strip())
    return SinkFacts(
        name=sink.name,
        view=sink.view,
        topic=sink.options.get("topic", ""),
        upsert=sink.format == "UPSERT",
        primary_key=pk,
        key_text=sink.key_encode == "TEXT",
        snapshot=sink.options.get("snapshot", "true").lower() != "false",
        bootstrap=sink.options.get("properties.bootstrap.server"),
    )


def describe(facts: SinkFacts, engine: str) -> str:
    """One line for ``migrate plan``: what (re)creating this sink does to its topic."""
    if facts.upsert:
        if engine == "risingwave":
            return (
                f"sink {facts.name} -> {facts.topic}: re-sends the current row of every key "
                "(consumers fold by key: no change), then reconcile writes a tombstone for "
                "every key on the topic that the view no longer has"
            )
        return (
            f"sink {facts.name} -> {facts.topic}: emitted state is kept; the next tick sends "
            "only changes, tombstones for vanished keys included"
        )
    if engine == "risingwave" and facts.snapshot:
        return (
            f"sink {facts.name} -> {facts.topic}: WARNING snapshot is not 'false': every row "
            "the view holds now (past alerts) is sent again"
        )
    return (
        f"sink {facts.name} -> {facts.topic}: sends only rows that appear from now on "
        "(no history replayed)"
    )


def _kafka_key(facts: SinkFacts, row: dict[str, Any]) -> bytes:
    if facts.key_text:
        return str(row[facts.primary_key[0]]).encode()
    return json.dumps({k: row[k] for k in facts.primary_key}, separators=(",", ":")).encode()


def live_keys(bootstrap: str, topic: str, timeout: float = 10.0) -> set[bytes]:
    """Keys whose latest record on ``topic`` is not a tombstone (read to the end, no group
    offsets kept)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"gridctl-reconcile-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        meta = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
        if meta is None or meta.error is not None:
            return set()
        parts = [TopicPartition(topic, p, 0) for p in meta.partitions]
        ends = {p.partition: consumer.get_watermark_offsets(p, timeout=timeout)[1] for p in parts}
        consumer.assign(parts)
        latest: dict[bytes, bool] = {}
        pending = {p for p, end in ends.items() if end > 0}
        while pending:
            msg = consumer.poll(timeout)
            if msg is None:
                raise TimeoutError(f"reading {topic} for reconcile timed out")
            if msg.error():
                continue
            if msg.key() is not None:
                latest[msg.key()] = msg.value() is not None
            if msg.offset() + 1 >= ends[msg.partition()]:
                pending.discard(msg.partition())
        return {k for k, alive in latest.items() if alive}
    finally:
        consumer.close()


def reconcile(
    conn: psycopg.Connection[Any],
    facts: SinkFacts,
    bootstrap: str,
    *,
    read_keys: Callable[[str, str], set[bytes]] = live_keys,
) -> list[bytes]:
    """Tombstone every key of ``facts.topic`` that the sink's view no longer holds; returns
    the keys tombstoned. A key that reappears in the view meanwhile is sent by the sink
    itself; its row is written again after the tombstones so that it wins either way."""
    if not facts.upsert or facts.view is None or not facts.primary_key:
        return []
    from confluent_kafka import Producer

    def view_rows() -> dict[bytes, dict[str, Any]]:
        query = sql.SQL("SELECT row_to_json(v)::text FROM {} AS v").format(
            sql.Identifier(facts.view)  # type: ignore[arg-type]
        )
        rows = [json.loads(r[0]) for r in conn.execute(query).fetchall()]
        return {_kafka_key(facts, r): r for r in rows}

    on_topic = read_keys(bootstrap, facts.topic)
    gone = sorted(on_topic - set(view_rows()))
    if not gone:
        return []
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for key in gone:
        producer.produce(facts.topic, key=key, value=None)
    producer.flush(30)
    back = {k: r for k, r in view_rows().items() if k in gone}
    for key, row in back.items():
        producer.produce(facts.topic, key=key, value=json.dumps(row).encode())
    producer.flush(30)
    log.info("reconciled %s: %d tombstone(s) on %s", facts.name, len(gone), facts.topic)
    return gone
