"""LocalBus's write-ahead log: recovery of torn tails, offsets beyond the log, every record
to a live reader, private files. Real files on disk, real LocalBus instances."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from pipeline import topics
from pipeline.bus import BusError, LocalBus, Record, Subscription

APPEND = topics.METER_VALUES
UPSERT = topics.DEMAND_RESPONSE


async def drain(sub: Subscription) -> list[Record]:
    out: list[Record] = []
    while batch := await sub.batch(timeout=0):
        out.extend(batch)
    return out


async def write(path: Path, records: list[tuple[str, str, bytes | None]]) -> None:
    bus = LocalBus(path, publish_timeout=30)
    await bus.start()
    for topic, key, value in records:
        await bus.publish(topic, key, value)
    await bus.stop()


async def read_all(path: Path, topic: str = APPEND) -> list[bytes | None]:
    bus = LocalBus(path)
    await bus.start()
    try:
        return [r.value for r in await drain(bus.subscribe([topic]))]
    finally:
        await bus.stop()


async def test_torn_tail_is_cut_with_one_warning_and_restarts_keep_working(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await write(tmp_path, [(APPEND, "s1", b"m1"), (APPEND, "s1", b"m2")])
    wal = tmp_path / "bus.log"
    whole = wal.stat().st_size
    torn = b'{"t": "ocpp.meter_values", "k": "s1", "v": "bT'
    with open(wal, "ab") as f:  # what kill -9 in the middle of a write leaves
        f.write(torn)
    assert len(torn) == 46
    caplog.set_level(logging.WARNING, "pipeline.bus")

    await write(tmp_path, [(APPEND, "s1", b"m3")])  # first restart, appends
    warnings = [r.getMessage() for r in caplog.records if "torn tail" in r.getMessage()]
    assert warnings == [
        f"bus log {wal}: torn tail cut at offset {whole} (46 bytes dropped: a write that "
        "was never acknowledged)"
    ]
    caplog.clear()
    # Second restart: nothing torn any more, every acknowledged record is there.
    assert await read_all(tmp_path) == [b"m1", b"m2", b"m3"]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_a_line_joined_onto_a_torn_one_keeps_its_record(tmp_path: Path) -> None:
    # What gridctl before this fix left: a restart appended a whole record onto the torn line.
    await write(tmp_path, [(APPEND, "s1", b"m1")])
    wal = tmp_path / "bus.log"
    good = wal.read_bytes()
    wal.write_bytes(good + b'{"t": "ocpp.meter_va' + good.replace(b"bTE=", b"bTI="))
    assert await read_all(tmp_path) == [b"m1", b"m2"]


async def test_garbage_in_the_middle_is_skipped_not_fatal(tmp_path: Path) -> None:
    await write(tmp_path, [(APPEND, "s1", b"m1")])
    wal = tmp_path / "bus.log"
    line = wal.read_bytes()
    wal.write_bytes(line + b"\x00\x00 not json\n" + line.replace(b"bTE=", b"bTI="))
    assert await read_all(tmp_path) == [b"m1", b"m2"]


async def test_an_unreadable_log_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "bus.log").mkdir()
    with pytest.raises(BusError, match=str(tmp_path / "bus.log")):
        await LocalBus(tmp_path).start()


async def test_committed_offset_beyond_the_log_is_moved_back_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await write(tmp_path, [(APPEND, "s1", f"m{i}".encode()) for i in range(5)])
    bus = LocalBus(tmp_path)
    await bus.start()
    sub = bus.subscribe([APPEND], group="g-beyond")
    assert len(await drain(sub)) == 5
    await sub.commit()
    await bus.stop()
    # Lose the last 3 records of the log (a restore from an older copy).
    wal = tmp_path / "bus.log"
    lines = wal.read_bytes().splitlines(keepends=True)
    wal.write_bytes(b"".join(lines[:2]))

    caplog.set_level(logging.WARNING, "pipeline.bus")
    before = REGISTRY.get_sample_value(
        "gridctl_bus_offsets_beyond_log_records_total", {"topic": APPEND, "reader": "g-beyond"}
    )
    bus = LocalBus(tmp_path)
    await bus.start()
    try:
        await bus.publish(APPEND, "s1", b"new")  # offset 2 again
        sub = bus.subscribe([APPEND], group="g-beyond")
        assert [r.value for r in await drain(sub)] == [b"new"]
    finally:
        await bus.stop()
    after = REGISTRY.get_sample_value(
        "gridctl_bus_offsets_beyond_log_records_total", {"topic": APPEND, "reader": "g-beyond"}
    )
    assert (after or 0) - (before or 0) == 3  # committed 5, the log ends at 2
    assert any(
        "group 'g-beyond'" in r.getMessage() and "3 records were lost" in r.getMessage()
        for r in caplog.records
    )


async def test_a_live_reader_gets_every_revision_a_later_one_the_latest() -> None:
    bus = LocalBus()
    await bus.start()
    try:
        live = bus.subscribe([UPSERT], group=None, from_beginning=False)
        # Within one tick: the newer revision is published before the older one.
        await bus.publish(UPSERT, "sig", b"mod-2")
        await bus.publish(UPSERT, "other", b"x")
        await bus.publish(UPSERT, "sig", b"mod-1")
        got = [(r.key, r.value) for r in await drain(live)]
        assert got == [("sig", b"mod-2"), ("other", b"x"), ("sig", b"mod-1")]
        later = bus.subscribe([UPSERT], group=None, from_beginning=True)
        assert [(r.key, r.value) for r in await drain(later)] == [
            ("other", b"x"),
            ("sig", b"mod-1"),
        ]
        assert await later.lag() == 0
        await bus.publish(UPSERT, "sig", b"mod-3")
        assert [r.value for r in await drain(later)] == [b"mod-3"]
    finally:
        await bus.stop()


async def test_a_restarted_group_reads_every_record_after_its_offset(tmp_path: Path) -> None:
    await write(tmp_path, [(UPSERT, "sig", b"a")])
    bus = LocalBus(tmp_path)
    await bus.start()
    sub = bus.subscribe([UPSERT], group="g-upsert")
    assert [r.value for r in await drain(sub)] == [b"a"]
    await sub.commit()
    await bus.publish(UPSERT, "sig", b"b")
    await bus.publish(UPSERT, "sig", b"c")
    await bus.stop()
    bus = LocalBus(tmp_path)
    await bus.start()
    try:
        sub = bus.subscribe([UPSERT], group="g-upsert")
        assert [r.value for r in await drain(sub)] == [b"b", b"c"]
    finally:
        await bus.stop()


async def test_log_files_are_private(tmp_path: Path) -> None:
    path = tmp_path / "bus"
    bus = LocalBus(path)
    await bus.start()
    sub = bus.subscribe([APPEND], group="g")
    await bus.publish(APPEND, "s1", b"m1")
    await drain(sub)
    await sub.commit()
    await bus.stop()
    assert stat.S_IMODE(path.stat().st_mode) == 0o700
    assert stat.S_IMODE((path / "bus.log").stat().st_mode) == 0o600
    assert stat.S_IMODE((path / "groups.json").stat().st_mode) == 0o600


async def test_keys_and_values_of_any_bytes_survive_a_restart_and_a_torn_line(
    tmp_path: Path,
) -> None:
    # the log line is built from msgspec-encoded strings: quotes, newlines, NUL, U+2028 and
    # non-ASCII in a key, arbitrary bytes in a value and tombstones all come back as written
    odd = 'CP-é"\n\x00\u2028\\'
    records = [(APPEND, odd, b"\xff\x00\n{"), (APPEND, "CP-2", None), (APPEND, "CP-3", b"3")]
    await write(tmp_path, records)
    log_file = tmp_path / "bus.log"
    lines = log_file.read_bytes().splitlines(keepends=True)
    assert len(lines) == 3 and all(line.startswith(b'{"t": ') for line in lines)
    # a torn write of a fourth record glued before a whole one: the whole one is salvaged
    log_file.write_bytes(b"".join(lines[:2]) + lines[2][:9] + lines[2])
    assert await read_all(tmp_path) == [b"\xff\x00\n{", None, b"3"]
    bus = LocalBus(tmp_path)
    await bus.start()
    try:
        keys = [r.key for r in await drain(bus.subscribe([APPEND]))]
    finally:
        await bus.stop()
    assert keys == [odd, "CP-2", "CP-3"]
