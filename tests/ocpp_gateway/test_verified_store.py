"""The store of verified passwords is written from a thread while the loop verifies more."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from ocpp_gateway.verified import VerifiedStore


def test_a_write_in_a_thread_while_the_loop_adds_stations(tmp_path: Path) -> None:
    store = VerifiedStore(tmp_path)
    for i in range(2000):
        store.remember(f"CP{i}", "pw", "hash")
    snap = store.snapshot()
    writer = threading.Thread(target=store.write, args=(snap,))
    writer.start()
    for i in range(2000, 4000):  # the loop goes on verifying meanwhile
        store.remember(f"CP{i}", "pw", "hash")
    writer.join()
    written = json.loads((tmp_path / "verified-credentials.json").read_text())
    assert len(written) == 2000  # the snapshot, whole (the live dict has 4,000 by now)
    assert (tmp_path / "verified-credentials.json").stat().st_mode & 0o777 == 0o600


def test_an_older_snapshot_never_replaces_a_newer_one(tmp_path: Path) -> None:
    store = VerifiedStore(tmp_path)
    store.remember("A", "pw", "hash")
    older = store.snapshot()
    store.remember("B", "pw", "hash")
    store.write(store.snapshot())
    store.write(older)  # a slow thread finishing last
    written = json.loads((tmp_path / "verified-credentials.json").read_text())
    assert sorted(written) == ["A", "B"]
