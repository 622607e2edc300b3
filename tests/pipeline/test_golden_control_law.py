"""Golden scenarios of control law v2 (docs/control-law.md), numbers computed by hand.

Each test feeds contract records through a LocalBus into the engine running the compiled
migrations on a real PostgreSQL, on a virtual clock, and checks what the sinks emit.
Stations are single-phase 230 V unless said otherwise: their minimum charging power is
6 A x 230 V = 1.38 kW, rounded up to the 0.1 kW step: 1.4 kW.
"""

from __future__ import annotations

import pytest

from pipeline import topics
from tests.pipeline.golden.harness import Harness

pytestmark = pytest.mark.timeout(180)


async def station(h: Harness, sid: str, zone: str, **kw: float) -> None:
    await h.station(sid, zone, phases=1, **kw)  # type: ignore[arg-type]


def dr_alerts(h: Harness, alert_type: str) -> list[dict]:
    return [a for a in h.alerts if a["topic"] == topics.ALERTS_DR and a["alert_type"] == alert_type]


def state(h: Harness, signal_id: str) -> tuple:
    rows = h.query(
        "SELECT state, shortfall_kw FROM dr_signal_states "
        f"WHERE signal_id = '{signal_id}'"  # test ids only
    )
    return rows[0] if rows else ("absent", None)


async def test_reduction_starting_now_is_enforced_at_the_first_tick(postgres: str) -> None:
    async with Harness(postgres) as h:
        await station(h, "A", "Z1")
        await station(h, "B", "Z1")
        for t in (-15, -5):  # A: 6 + 6 kW on two connectors; B: 4 kW
            await h.sample("A", 1, 6.0, t)
            await h.sample("A", 2, 6.0, t)
            await h.sample("B", 1, 4.0, t)
        await h.signal("sig1", "Z1", start=0, end=600, target_reduction_kw=6.0)
        await h.tick(1)
        # Baseline: the latest sample of each connector before start, 16 kW (no waiting for
        # a minute to close); cap 16 - 6 = 10. CURTAIL floors 1.4 each, the 7.2 kW left
        # by frozen demand 12 : 4 -> A 1.4 + 5.4 = 6.8, B 1.4 + 1.8 = 3.2.
        assert h.targets() == {"A": 6.8, "B": 3.2}
        assert h.commands["A"]["station_shed_kw"] == 5.2
        assert h.commands["A"]["dr_end_ts"] == "2026-01-05T12:10:00Z"
        assert state(h, "sig1") == ("enforced", 0.0)
        await h.tick(2)  # the candidates came back through the bus: frozen
        assert sorted(h.query("SELECT station_id, baseline_kw, basis FROM dr_baselines")) == [
            ("*", 16.0, "pre_start"),
            ("A", 12.0, "pre_start"),
            ("B", 4.0, "pre_start"),
        ]
        # Ten minutes of chargers drawing their targets, with +-5 % meter noise: weights are
        # the frozen demand, so nothing moves and no command is sent again.
        for i, t in enumerate(range(10, 600, 10)):
            noise = 1.05 if i % 2 else 0.95
            await h.sample("A", 1, 3.4 * noise, t)
            await h.sample("A", 2, 3.4 * noise, t)
            await h.sample("B", 1, 3.2 * noise, t)
            await h.tick(t + 1)
        assert h.targets() == {"A": 6.8, "B": 3.2}
        assert len(h.command_updates) == 2
        assert h.query("SELECT baseline_kw, cap_kw FROM dr_zone_caps") == [(16.0, 10.0)]


async def test_levels_of_one_event_share_one_baseline(postgres: str) -> None:
    async with Harness(postgres) as h:
        await station(h, "A", "Z1")
        await station(h, "B", "Z1")
        await h.sample("A", 1, 10.0, -5)
        await h.sample("B", 1, 10.0, -5)
        # One OpenADR event, two intervals: 50 % for 5 minutes, then 25 %.
        await h.signal("E-1", "Z1", start=0, end=300, event_id="E", target_reduction_pct=50.0)
        await h.signal("E-2", "Z1", start=300, end=900, event_id="E", target_reduction_pct=25.0)
        await h.tick(1)
        assert h.targets() == {"A": 5.0, "B": 5.0}  # cap 10: 1.4 + 3.6 each
        for t in range(10, 301, 10):
            await h.sample("A", 1, 5.0, t)
            await h.sample("B", 1, 5.0, t)
            await h.tick(t + 1)
        # The second interval keeps the event's baseline, 20 kW (not the curtailed 10):
        # cap 15 -> 1.4 + 6.1 = 7.5 each (from the curtailed load it would be 3.75).
        assert h.targets() == {"A": 7.5, "B": 7.5}
        assert h.query(
            "SELECT baseline_kw, cap_kw FROM dr_signal_caps WHERE signal_id = 'E-2'"
        ) == [(20.0, 15.0)]
        assert h.tombstones == []  # no gap at the interval boundary


async def test_event_heard_after_its_start(postgres: str) -> None:
    async with Harness(postgres) as h:
        await station(h, "A", "Z1")
        await station(h, "B", "Z2")
        # A drew 10 kW before its event (started 10 min before we heard of it), 8 kW now.
        await h.sample("A", 1, 10.0, -610)
        await h.sample("A", 1, 8.0, -5)
        # B's event started 20 min ago: older than the 15 min of samples kept.
        await h.sample("B", 1, 10.0, -1205)
        await h.sample("B", 1, 8.0, -5)
        await h.signal("a", "Z1", start=-600, end=600, received=0, target_reduction_pct=50.0)
        await h.signal("b", "Z2", start=-1200, end=600, received=0, target_reduction_pct=50.0)
        await h.tick(1)
        # a: the pre-start sample, 10 kW -> cap 5. b: the load now, 8 kW -> cap 4.
        assert h.targets() == {"A": 5.0, "B": 4.0}
        assert sorted(
            h.query("SELECT signal_id, baseline_kw, baseline_basis, cap_kw FROM dr_signal_caps")
        ) == [("a", 10.0, "pre_start", 5.0), ("b", 8.0, "load_now", 4.0)]


async def test_events_of_different_starts_each_find_their_own_pre_start_load(
    postgres: str,
) -> None:
    """dr_prestart_load reads only samples between the earliest start less freshness and
    the latest start (the bounds of every event's own window): one event starting now and
    one that started ten minutes ago, in one tick, each get the sample before their start."""
    async with Harness(postgres) as h:
        await station(h, "A", "Z1")
        await station(h, "B", "Z2")
        await h.sample("A", 1, 10.0, -610)  # before a's start (-600)
        await h.sample("A", 1, 8.0, -5)
        await h.sample("B", 1, 12.0, -700)  # too old for b: 700 s before its start
        await h.sample("B", 1, 6.0, -5)  # b's pre-start load: 5 s before it starts
        await h.sample("B", 1, 9.0, 1)  # after b's start: not its baseline
        await h.signal("a", "Z1", start=-600, end=600, received=0, target_reduction_pct=50.0)
        await h.signal("b", "Z2", start=0, end=600, received=0, target_reduction_pct=50.0)
        await h.tick(1)
        # a: 10 kW before its start -> cap 5; b: 6 kW -> cap 3.
        assert sorted(
            h.query("SELECT signal_id, baseline_kw, baseline_basis, cap_kw FROM dr_signal_caps")
        ) == [("a", 10.0, "pre_start", 5.0), ("b", 6.0, "pre_start", 3.0)]
        assert h.targets() == {"A": 5.0, "B": 3.0}


async def test_pre_start_load_of_connectors_in_each_case(postgres: str) -> None:
    """dr_prestart_load takes a connector's pre-start sample three ways (its latest if that
    is from before the start; else its samples before the start ranked; a connector with no
    fresh sample now, its older samples ranked): each way, and two on one station, give the
    latest sample at or before the start that was fresh then."""
    async with Harness(postgres) as h:
        await station(h, "A", "Z1")
        await station(h, "B", "Z1")
        await station(h, "C", "Z2")
        await station(h, "D", "Z2")
        # Event n starts now. A: connector 1's latest is from before the start (6 kW);
        # connector 2 reported again after it (9 kW): its pre-start sample is 4 kW.
        await h.sample("A", 1, 6.0, -5)
        await h.sample("A", 2, 4.0, -5)
        await h.sample("A", 2, 9.0, 1)
        await h.sample("B", 1, 5.0, -5)
        # Event h started 10 minutes before we heard of it. C has been silent since 50 s
        # before that start (no fresh sample now); D reported since.
        await h.sample("C", 1, 10.0, -650)
        await h.sample("D", 1, 12.0, -730)  # more than freshness (120 s) before the start
        await h.sample("D", 1, 7.0, -610)
        await h.sample("D", 1, 3.0, -5)
        await h.signal("n", "Z1", start=0, end=600, received=0, target_reduction_pct=50.0)
        await h.signal("h", "Z2", start=-600, end=600, received=0, target_reduction_pct=50.0)
        await h.tick(2)
        assert sorted(
            h.query("SELECT station_id, baseline_kw, basis FROM dr_baseline_computed")
        ) == [
            ("A", 10.0, "pre_start"),
            ("B", 5.0, "pre_start"),
            ("C", 10.0, "pre_start"),
            ("D", 7.0, "pre_start"),
        ]
        # n: 15 kW -> cap 7.5; h: 17 kW -> cap 8.5.
        assert sorted(h.query("SELECT signal_id, baseline_kw, cap_kw FROM dr_signal_caps")) == [
            ("h", 17.0, 8.5),
            ("n", 15.0, 7.5),
        ]


async def test_second_signal_in_a_curtailed_zone_borrows_the_baseline(postgres: str) -> None:
    async with Harness(postgres) as h:
        await station(h, "A", "Z1")
        await station(h, "B", "Z1")
        await h.sample("A", 1, 10.0, -5)
        await h.sample("B", 1, 10.0, -5)
        await h.signal("first", "Z1", start=0, end=3600, target_reduction_kw=5.0)
        await h.signal("second", "Z1", start=60, end=3600, target_reduction_pct=50.0)
        await h.tick(1)
        assert h.targets() == {"A": 7.5, "B": 7.5}  # cap 20 - 5 = 15
        for t in range(10, 61, 10):
            await h.sample("A", 1, 7.5, t)
            await h.sample("B", 1, 7.5, t)
            await h.tick(t + 1)
        # The second signal borrows the first's frozen 20 kW (the load now, 15 kW, is
        # already curtailed): cap 10 < 15 wins -> 1.4 + 3.6 = 5.0 each (not 3.75).
        assert h.query(
            "SELECT baseline_kw, baseline_basis, cap_kw FROM dr_signal_caps "
            "WHERE signal_id = 'second'"
        ) == [(20.0, "lent", 10.0)]
        assert h.targets() == {"A": 5.0, "B": 5.0}
        assert h.commands["A"]["signal_id"] == "second"


async def test_ac_station_in_amps_under_shed_never_between_zero_and_6_a(postgres: str) -> None:
    async with Harness(postgres) as h:
        for sid in ("A", "B", "C"):  # three-phase 230 V, limited in A: min 4.14 kW
            await h.station(sid, "Z1", unit="A")
        await h.sample("A", 1, 10.0, -5)
        await h.sample("B", 1, 10.0, -5)
        await h.sample("C", 1, 2.0, -5)
        await h.signal("s", "Z1", "SHED", start=0, end=600, priority=1, zone_limit_kw=12.0)
        await h.tick(1)
        # Shares below 4.14 kW cannot be followed. By frozen demand 10, 10, 2 the minima
        # fit for A and B (8.28 kW <= 12), not for C as well (12.42 > 12): C pauses (0);
        # A and B get 4.14 + 3.72 / 2 = 6.0 kW = 8.69 A -> 8.6 A = 8.6 x 690 W = 5.934 kW
        # each (quantised in A, the charger's unit).
        assert h.targets() == {"A": 5.934, "B": 5.934, "C": 0.0}
        for t in range(10, 300, 10):
            await h.sample("A", 1, 5.934, t)
            await h.sample("B", 1, 5.934, t)
            await h.sample("C", 1, 0.0, t)
            await h.tick(t + 1)
        for _, _, value in h.command_updates:
            assert value is None or value["target_power_kw"] in (0.0, 5.934)
        assert len(h.command_updates) == 3


async def test_capacity_freed_by_a_pause_and_a_ceiling_goes_to_the_others(postgres: str) -> None:
    async with Harness(postgres) as h:
        # Minimum 3 kW each (min_active_kw); A's hardware stops at 3.5 kW.
        await station(h, "A", "Z1", max_kw=3.5, min_active_kw=3.0)
        for sid in ("B", "C", "D"):
            await station(h, sid, "Z1", min_active_kw=3.0)
        for sid, kw in (("A", 10.0), ("B", 6.0), ("C", 4.0), ("D", 1.0)):
            await h.sample(sid, 1, kw, -5)
        await h.signal("s", "Z1", "SHED", start=0, end=600, zone_limit_kw=11.0)
        await h.tick(1)
        # By frozen demand 10, 6, 4, 1 the minima fit for A, B, C (9 kW <= 11), not for D
        # as well (12 > 11): D pauses. 11 - 9 = 2 kW left, by weight 10 : 6 : 4 -> A would
        # get 1.0 but has room for 0.5 (ceiling 3.5): A full at 3.5; the other 1.5 kW by
        # 6 : 4 -> B 3 + 0.9 = 3.9, C 3 + 0.6 = 3.6. All of the cap is used: 11.0.
        assert h.targets() == {"A": 3.5, "B": 3.9, "C": 3.6, "D": 0.0}
        assert sum(h.targets().values()) == pytest.approx(11.0)
        for t in range(10, 120, 10):  # chargers comply: nothing moves
            for sid, kw in h.targets().items():
                await h.sample(sid, 1, kw, t)
            await h.tick(t + 1)
        assert h.targets() == {"A": 3.5, "B": 3.9, "C": 3.6, "D": 0.0}
        assert len(h.command_updates) == 4


async def test_not_supported_station_is_reserved_and_the_others_drop(postgres: str) -> None:
    async with Harness(postgres) as h:
        for sid in ("A", "B", "C"):
            await station(h, sid, "Z1")
            await h.sample(sid, 1, 10.0, -5)
        await h.signal("sig", "Z1", start=0, end=600, zone_limit_kw=18.0)
        await h.tick(1)
        assert h.targets() == {"A": 6.0, "B": 6.0, "C": 6.0}  # 1.4 + 13.8 / 3 each
        await h.result("A", "sig", "Accepted", 2)
        await h.result("B", "sig", "Accepted", 2)
        await h.result("C", "sig", "NotSupported", 2)
        await h.sample("A", 1, 6.0, 2)
        await h.sample("B", 1, 6.0, 2)
        await h.sample("C", 1, 10.0, 2)  # C keeps drawing 10 kW
        await h.tick(3)
        # C's 10 kW is reserved: 18 - 10 - floors 2.8 = 5.2 left -> A, B 1.4 + 2.6 = 4.0.
        assert h.targets() == {"A": 4.0, "B": 4.0, "C": 10.0}
        assert 4.0 + 4.0 + 10.0 <= 18.0
        await h.tick(4)  # the alert episode comes back frozen (pipeline.dr_alert_episodes)
        alerts = dr_alerts(h, "station_uncontrollable")
        assert [(a["station_id"], a["signal_id"], a["observed_kw"]) for a in alerts] == [
            ("C", "sig", 10.0)
        ]
        # C accepts a retry (reconnect): controllable again, shares even out.
        await h.result("C", "sig", "Accepted", 10)
        await h.tick(11)
        assert h.targets() == {"A": 6.0, "B": 6.0, "C": 6.0}


async def test_station_that_overdraws_its_accepted_limit_is_reserved_then_retried(
    postgres: str,
) -> None:
    async with Harness(postgres) as h:
        for sid in ("A", "B", "C"):
            await station(h, sid, "Z1")
            await h.sample(sid, 1, 10.0, -5)
        await h.signal("sig", "Z1", start=0, end=600, zone_limit_kw=18.0)
        await h.tick(1)
        assert h.targets() == {"A": 6.0, "B": 6.0, "C": 6.0}  # 1.4 + 13.8 / 3 each
        for sid in ("A", "B", "C"):  # every station accepts its 6 kW
            await h.result(sid, "sig", "Accepted", 2, limit_kw=6.0)

        async def minute(t0: int, t1: int, c_kw: float) -> None:
            for t in range(t0, t1, 10):
                await h.sample("A", 1, h.targets()["A"], t)
                await h.sample("B", 1, h.targets()["B"], t)
                await h.sample("C", 1, c_kw, t)  # C draws what it likes
                await h.tick(t + 1)

        await minute(10, 70, 10.0)
        # Tick 61: accepted at 2 s, not yet 60 s (uncontrolled_grace_seconds) ago.
        assert h.targets() == {"A": 6.0, "B": 6.0, "C": 6.0}
        assert dr_alerts(h, "station_uncontrollable") == []
        await minute(70, 80, 10.0)
        # Tick 71: accepted 69 s ago, and every sample of the last 60 s (20..70 s) is
        # 10 kW > 6 + 0.5 kW tolerance (max(0.5 kW, 5 % of 6)): C does not follow its
        # limit. Its 10 kW are reserved: 18 - 10 - floors 2.8 = 5.2 -> A, B 1.4 + 2.6 =
        # 4.0; C keeps the 6 kW it accepted (no new command to it).
        assert h.targets() == {"A": 4.0, "B": 4.0, "C": 6.0}
        assert 4.0 + 4.0 + 10.0 <= 18.0  # what the zone draws once A and B follow
        await h.tick(72)  # the alert episode comes back frozen (pipeline.dr_alert_episodes)
        alerts = dr_alerts(h, "station_uncontrollable")
        assert [(a["station_id"], a["observed_kw"], a["limit_kw"], a["detected_at"][11:19])
                for a in alerts] == [("C", 10.0, 6.0, "12:01:02")]  # fmt: skip
        # detected: accepted at 2 s + 60 s of grace
        await h.result("A", "sig", "Accepted", 72, limit_kw=4.0)
        await h.result("B", "sig", "Accepted", 72, limit_kw=4.0)
        await minute(80, 100, 10.0)
        assert h.targets() == {"A": 4.0, "B": 4.0, "C": 6.0}
        # C reconnects; the gateway re-sends its profile and C accepts it: controllable
        # again for the grace period, shares even out; C now follows its limit.
        await h.result("C", "sig", "Accepted", 101, limit_kw=6.0)
        await minute(100, 110, 6.0)
        assert h.targets() == {"A": 6.0, "B": 6.0, "C": 6.0}
        await h.result("A", "sig", "Accepted", 112, limit_kw=6.0)
        await h.result("B", "sig", "Accepted", 112, limit_kw=6.0)
        await minute(110, 190, 6.0)
        assert h.targets() == {"A": 6.0, "B": 6.0, "C": 6.0}
        assert len(dr_alerts(h, "station_uncontrollable")) == 1
        assert [v["target_power_kw"] for _, k, v in h.command_updates if k == "C"] == [6.0]


async def test_infeasible_cap_is_said_and_alerted(postgres: str) -> None:
    async with Harness(postgres) as h:
        for sid in ("A", "B", "C"):
            await station(h, sid, "Z1")
            await h.sample(sid, 1, 5.0, -5)
        await h.signal("tight", "Z1", start=0, end=600, zone_limit_kw=4.0)
        await h.tick(1)
        # Three sessions at their 1.4 kW minimum need 4.2 kW > 4.0: infeasible by 0.2 kW.
        assert state(h, "tight") == ("infeasible", 0.2)
        assert h.targets() == {"A": 1.4, "B": 1.4, "C": 1.4}
        await h.tick(20)
        assert dr_alerts(h, "signal_infeasible") == []  # within the 30 s bound
        await h.tick(31)
        await h.tick(32)  # the alert episode comes back frozen (pipeline.dr_alert_episodes)
        alerts = dr_alerts(h, "signal_infeasible")
        assert [(a["signal_id"], a["observed_kw"], a["limit_kw"]) for a in alerts] == [
            ("tight", 4.2, 4.0)
        ]
        await h.tick(60)
        assert len(dr_alerts(h, "signal_infeasible")) == 1


async def test_waiting_for_load_then_enforced(postgres: str) -> None:
    async with Harness(postgres) as h:
        await station(h, "A", "Z1")
        await h.signal("w", "Z1", start=0, end=600, target_reduction_pct=50.0)
        await h.signal("nowhere", "ZX", start=0, end=600, zone_limit_kw=5.0)
        await h.tick(1)
        assert state(h, "w") == ("waiting_for_load", 0.0)
        assert state(h, "nowhere")[0] == "no_stations"
        assert h.commands == {}
        await h.tick(31)
        await h.tick(32)  # the alert episodes come back frozen (pipeline.dr_alert_episodes)
        assert [a["signal_id"] for a in dr_alerts(h, "signal_waiting_for_load")] == ["w"]
        assert [a["signal_id"] for a in dr_alerts(h, "signal_no_stations")] == ["nowhere"]
        await h.sample("A", 1, 10.0, 40)  # the charger reports: its load now is the baseline
        await h.tick(41)
        assert state(h, "w") == ("enforced", 0.0)
        assert h.targets() == {"A": 5.0}
        assert h.query("SELECT baseline_basis FROM dr_signal_caps WHERE signal_id = 'w'") == [
            ("load_now",)
        ]


async def test_last_minute_of_an_event_gets_its_verdict(postgres: str) -> None:
    async with Harness(postgres, cap_grace_seconds="0") as h:
        await station(h, "A", "Z1")
        await h.signal("sig", "Z1", start=0, end=120, zone_limit_kw=5.0)
        for t in range(0, 200, 10):  # the charger ignores its limit
            await h.sample("A", 1, 10.0, t)
            await h.tick(t + 1)
        over = dr_alerts(h, "zone_over_cap")
        assert [a["window_start"][11:19] for a in over] == ["12:00:00", "12:01:00"]


async def test_clamps_to_station_max_and_contract(postgres: str) -> None:
    async with Harness(postgres) as h:
        await station(h, "A", "Z1", max_kw=22.0, contract_kw=7.0)
        await station(h, "B", "Z1", max_kw=5.0, contract_kw=22.0)
        await h.sample("A", 1, 10.0, -5)
        await h.sample("B", 1, 10.0, -5)
        await h.signal("lim", "Z1", start=0, end=600, zone_limit_kw=30.0)
        await h.tick(1)
        # Shares would be 15 each; A is capped by its contract, B by its hardware.
        assert h.targets() == {"A": 7.0, "B": 5.0}


async def test_modification_changes_cap_and_stale_revision_ignored(postgres: str) -> None:
    async with Harness(postgres) as h:
        await station(h, "A", "Z1")
        await station(h, "B", "Z1")
        await h.sample("A", 1, 10.0, -5)
        await h.sample("B", 1, 10.0, -5)
        await h.signal("sig", "Z1", start=0, end=3600, target_reduction_kw=4.0)
        await h.tick(1)
        assert h.targets() == {"A": 8.0, "B": 8.0}  # cap 16: 1.4 + 6.6 each
        await h.signal("sig", "Z1", start=0, end=3600, modification=2, target_reduction_kw=10.0)
        await h.tick(16)
        # Same frozen baseline (20 kW), new reduction: cap 10.
        assert h.targets() == {"A": 5.0, "B": 5.0}
        # An older revision arriving late does not win over modification 2.
        await h.signal("sig", "Z1", start=0, end=3600, modification=1, target_reduction_kw=1.0)
        await h.tick(17)
        assert h.targets() == {"A": 5.0, "B": 5.0}


async def test_restore_and_natural_end_give_tombstones(postgres: str) -> None:
    async with Harness(postgres) as h:
        await station(h, "A", "Z1")
        await station(h, "B", "Z2")
        await h.sample("A", 1, 10.0, -5)
        await h.sample("B", 1, 10.0, -5)
        await h.signal("r", "Z1", start=0, end=3600, zone_limit_kw=5.0)
        await h.signal("e", "Z2", start=0, end=60, zone_limit_kw=4.0)
        await h.tick(1)
        assert h.targets() == {"A": 5.0, "B": 4.0}
        await h.signal("r", "Z1", "RESTORE", start=0, end=3600, modification=1)
        await h.tick(30)
        assert h.tombstones == [(30, "A")]
        await h.tick(59)
        assert h.targets() == {"B": 4.0}
        await h.tick(60)  # end_ts is exclusive: the signal is over at 60 s
        assert h.tombstones == [(30, "A"), (60, "B")]
        assert h.commands == {}


async def test_lowest_cap_wins_across_signals(postgres: str) -> None:
    async with Harness(postgres) as h:
        await station(h, "A", "Z1")
        await h.sample("A", 1, 10.0, -5)
        await h.signal("econ", "Z1", start=0, end=600, priority=2, zone_limit_kw=6.0)
        await h.signal("emerg", "Z1", "SHED", start=0, end=300, priority=1, zone_limit_kw=3.0)
        await h.tick(1)
        assert h.targets() == {"A": 3.0}
        assert h.commands["A"]["signal_id"] == "emerg"
        assert h.commands["A"]["priority"] == 1
        await h.sample("A", 1, 3.0, 300)
        await h.tick(301)  # the emergency ended: the economic signal's cap applies again
        assert h.targets() == {"A": 6.0}
        assert h.commands["A"]["signal_id"] == "econ"


async def idle(h: Harness, sid: str, t: float, status: str = "Available") -> None:
    """A 1.6 charger that connects and reports its one connector (no MeterValues)."""
    await h.status(sid, "Connected", t)
    await h.status(sid, "StatusNotification", t, connector=1, status=status)


async def test_idle_chargers_hold_no_floor_and_a_session_starting_gets_it_back(
    postgres: str,
) -> None:
    async with Harness(postgres) as h:
        idle_ids = [f"I{n}" for n in range(10)]
        for sid in ["A", "B", *idle_ids]:
            await station(h, sid, "Z1")
        for t in (-15, -5):  # A draws 6 kW, B 3 kW; the ten idle ones send nothing
            await h.sample("A", 1, 6.0, t)
            await h.sample("B", 1, 3.0, t)
        await h.signal("sig1", "Z1", start=0, end=600, zone_limit_kw=8.0)
        await h.tick(1)
        # No status known: all 12 held at their floor, 12 x 1.4 = 16.8 kW > 8 kW.
        assert state(h, "sig1") == ("infeasible", 8.8)
        for sid in idle_ids:
            await idle(h, sid, 2)
        await h.sample("A", 1, 6.0, 5)
        await h.sample("B", 1, 3.0, 5)
        await h.tick(6)
        # Idle ones: floor 0, limit 0. Floors 2 x 1.4 = 2.8, 8 - 2.8 = 5.2 kW shared by
        # frozen demand 6 : 3 -> A 1.4 + 3.467 = 4.867 -> 4.8, B 1.4 + 1.733 = 3.133 -> 3.1.
        assert state(h, "sig1") == ("enforced", 0.0)
        assert h.targets() == {"A": 4.8, "B": 3.1, **{sid: 0.0 for sid in idle_ids}}
        # A vehicle plugs into I0 mid-event: its limit stays 0 until its status comes in,
        # then it is floored again: 3 x 1.4 = 4.2, 3.8 kW by 6 : 3 -> A 1.4 + 2.533 = 3.9,
        # B 1.4 + 1.267 = 2.6 (2.667 down to the step), I0 1.4: 7.9 kW <= 8.
        await h.status("I0", "StatusNotification", 10, connector=1, status="Preparing")
        await h.sample("A", 1, 4.8, 10)
        await h.sample("B", 1, 3.1, 10)
        await h.tick(11)
        assert h.targets() == {"A": 3.9, "B": 2.6, "I0": 1.4, **{s: 0.0 for s in idle_ids[1:]}}
        # A status from before the station's current connection is unknown: I1 reconnects
        # and has not reported yet -> floored: 8 - 4 x 1.4 = 2.4 by 6 : 3, A 3.0, B 2.2.
        await h.status("I1", "Connected", 15)
        await h.sample("A", 1, 3.9, 15)
        await h.sample("B", 1, 2.6, 15)
        await h.tick(16)
        assert h.targets()["I1"] == 1.4
        assert (h.targets()["A"], h.targets()["B"]) == (3.0, 2.2)
        # A disconnected one too: 8 - 5 x 1.4 = 1.0 by 6 : 3, A 2.067 -> 2.0, B 1.733 -> 1.7.
        await h.status("I2", "Disconnected", 17)
        await h.tick(18)
        assert h.targets()["I2"] == 1.4
        assert (h.targets()["A"], h.targets()["B"]) == (2.0, 1.7)
        assert state(h, "sig1") == ("enforced", 0.0)
        # A vehicle on I3 whose 0 A limit holds its session at 0 kW (fresh samples, not
        # active): plugged in, no frozen demand -> floored at its minimum, not starved at 0;
        # 6 x 1.4 = 8.4 kW of floors, 0.4 kW over the cap.
        await h.status("I3", "StatusNotification", 19, connector=1, status="SuspendedEVSE")
        await h.sample("I3", 1, 0.0, 19)
        await h.tick(20)
        assert h.query(
            "SELECT ROUND(floor_kw::NUMERIC, 3)::FLOAT FROM dr_station_bounds "
            "WHERE station_id = 'I3'"
        ) == [(1.4,)]
        assert state(h, "sig1") == ("infeasible", 0.4)


async def test_a_201_evse_with_one_connector_occupied_is_not_idle(postgres: str) -> None:
    # OCPP 2.0.1 StatusNotification names the EVSE and the connector within it; an EVSE
    # with two connectors reports each. A vehicle on connector 1 of EVSE 1 is not undone
    # by connector 2 of the same EVSE reporting Available afterwards.
    async with Harness(postgres) as h:
        for sid in ("A", "P", "Q"):
            await station(h, sid, "Z1")
        await h.sample("A", 1, 6.0, -5)  # A charges: floor 1.4 kW
        for sid in ("P", "Q"):
            await h.status(sid, "Connected", -10, ocpp_version="2.0.1")
        # P: a vehicle on connector 1, connector 2 free -> plugged, held at 1.4 kW.
        await h.status("P", "StatusNotification", -9, 1, "Occupied", evse_connector=1,
                       ocpp_version="2.0.1")  # fmt: skip
        await h.status("P", "StatusNotification", -8, 1, "Available", evse_connector=2,
                       ocpp_version="2.0.1")  # fmt: skip
        # Q: both connectors free -> idle, floor 0.
        await h.status("Q", "StatusNotification", -9, 1, "Available", evse_connector=1,
                       ocpp_version="2.0.1")  # fmt: skip
        await h.status("Q", "StatusNotification", -8, 1, "Available", evse_connector=2,
                       ocpp_version="2.0.1")  # fmt: skip
        await h.signal("sig1", "Z1", start=0, end=600, zone_limit_kw=2.0)
        await h.tick(1)
        assert sorted(h.query("SELECT station_id, idle, plugged FROM station_vehicle_status")) == [
            ("P", False, True),
            ("Q", True, False),
        ]
        floors = h.query(
            "SELECT station_id, ROUND(floor_kw::NUMERIC, 3)::FLOAT FROM dr_station_bounds"
        )
        assert sorted(floors) == [("A", 1.4), ("P", 1.4), ("Q", 0.0)]
        # Floors 2 x 1.4 = 2.8 kW against a 2 kW cap: infeasible by 0.8 kW.
        assert state(h, "sig1") == ("infeasible", 0.8)
        # The vehicle leaves connector 1: P is idle too, and 1.4 <= 2 kW fits.
        await h.status("P", "StatusNotification", 2, 1, "Available", evse_connector=1,
                       ocpp_version="2.0.1")  # fmt: skip
        await h.sample("A", 1, 2.0, 2)
        await h.tick(3)
        assert state(h, "sig1") == ("enforced", 0.0)
        assert h.targets() == {"A": 2.0, "P": 0.0, "Q": 0.0}
