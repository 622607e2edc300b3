"""RevisionStore on a real sqlite file: revisions, RESTORE of vanished signals, the outbox."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dr_bridge.errors import StoreUnusable
from dr_bridge.revisions import RevisionStore
from pipeline.contracts import DemandResponseSignal

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def sig(
    signal_id: str, modification: int, zone: str = "z", pct: float = 20
) -> DemandResponseSignal:
    return DemandResponseSignal(
        signal_id=signal_id,
        modification=modification,
        zone_id=zone,
        signal_type="CURTAIL",
        target_reduction_pct=pct,
        start_ts=NOW,
        end_ts=NOW + timedelta(hours=1),
        source="openadr2",
        received_ts=NOW,
    )


def test_revisions_survive_a_reopen_and_vanished_signals_get_restore(tmp_path: Path) -> None:
    store = RevisionStore(tmp_path)
    out = store.commit_revision("openadr2", "ev", 0, "", "", [sig("a", 0), sig("b", 0)])
    assert [s.signal_id for s in out] == ["a", "b"]
    assert {s.signal_id for s in store.pending()} == {"a", "b"}
    store.confirm("a", 0)
    store.confirm("b", 0)
    assert store.pending() == []
    store.close()

    store = RevisionStore(tmp_path)
    state = store.event("openadr2", "ev")
    assert state is not None and (state.revision, state.signal_ids) == (0, ("a", "b"))
    # Revision 3 keeps "a" (new amount) and drops "b": "b" gets a RESTORE at 3.
    out = store.commit_revision("openadr2", "ev", 3, "", "", [sig("a", 3, pct=50)])
    assert [(s.signal_id, s.modification, s.signal_type) for s in out] == [
        ("a", 3, "CURTAIL"),
        ("b", 3, "RESTORE"),
    ]
    restore = out[1]
    assert (restore.zone_id, restore.start_ts, restore.target_reduction_pct) == ("z", NOW, None)
    assert {(s.signal_id, s.modification) for s in store.pending()} == {("a", 3), ("b", 3)}
    # An empty revision (a cancellation) restores "a" only: "b" has ended already.
    out = store.commit_revision("openadr2", "ev", 4, "", "", [])
    assert [(s.signal_id, s.signal_type) for s in out] == [("a", "RESTORE")]
    latest = {s.signal.signal_id: s for s in store.latest_all()}
    assert {k: (v.signal.modification, v.signal.signal_type) for k, v in latest.items()} == {
        "a": (4, "RESTORE"),
        "b": (3, "RESTORE"),
    }
    assert not latest["a"].confirmed
    assert store.is_confirmed("a", 0) and not store.is_confirmed("a", 4)
    assert [e.ext_id for e in store.events("openadr2")] == ["ev"]
    assert store.events("api") == []
    store.close()


def test_a_damaged_store_is_one_error_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "dr-revisions.sqlite3").write_bytes(b"not a database, just bytes" * 100)
    with pytest.raises(StoreUnusable, match=str(tmp_path / "dr-revisions.sqlite3")):
        RevisionStore(tmp_path)


def test_the_store_is_private(tmp_path: Path) -> None:
    store = RevisionStore(tmp_path)
    store.close()
    assert (tmp_path / "dr-revisions.sqlite3").stat().st_mode & 0o777 == 0o600
