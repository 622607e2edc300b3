"""The HTTP API against the real app (httpx ASGI transport) and a real LocalBus."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from dr_bridge import Bridge
from pipeline import topics
from pipeline.contracts import DrSignalState, encode
from tests.dr_bridge.conftest import TOKEN, RecordingBus, dr_records, field_names


def _body(**over: object) -> dict[str, object]:
    body: dict[str, object] = {"zone_id": "zone-a", "target_reduction_kw": 10, "duration": "15m"}
    body.update(over)
    return body


# -- auth -------------------------------------------------------------------------------
async def test_healthz_needs_no_token(bridge: Bridge) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=bridge.app), base_url="http://b"
    ) as anon:
        r = await anon.get("/healthz")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok"
    assert body["components"]["bridge"] == {
        "ok": True,
        "detail": "API up; 0 signal revision(s) awaiting bus confirmation",
    }


@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Basic {TOKEN}", "Bearer "])
@pytest.mark.parametrize(
    "method,path",
    [
        ("GET", "/v1/signals"),
        ("POST", "/v1/signals"),
        ("GET", "/metrics"),
        ("GET", "/v1/stations"),
        ("DELETE", "/v1/signals/x"),
    ],
)
async def test_401_without_or_with_wrong_token(
    bridge: Bridge, bus: RecordingBus, header: str | None, method: str, path: str
) -> None:
    headers = {"Authorization": header} if header else {}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=bridge.app), base_url="http://b", headers=headers
    ) as anon:
        r = await anon.request(method, path, json=_body() if method == "POST" else None)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert bus.published == []


# -- POST -------------------------------------------------------------------------------
async def test_post_returns_201_after_the_record_is_on_the_bus(
    client: httpx.AsyncClient, bus: RecordingBus
) -> None:
    r = await client.post("/v1/signals", json=_body(signal_id="s-1", priority=1))
    assert r.status_code == 201
    body = r.json()
    assert body["signal_id"] == "s-1"
    assert body["modification"] == 0
    assert body["signal_type"] == "CURTAIL"
    assert body["target_reduction_kw"] == 10
    start = datetime.fromisoformat(body["start_ts"])
    assert datetime.fromisoformat(body["end_ts"]) - start == timedelta(minutes=15)
    assert start.tzinfo is not None
    # Confirmed on the bus before the answer, keyed by signal_id.
    [on_bus] = await dr_records(bus)
    assert on_bus.signal_id == "s-1" and on_bus.priority == 1 and on_bus.source == "api"
    assert bridge_store_confirmed(client, "s-1")


def bridge_store_confirmed(client: httpx.AsyncClient, signal_id: str) -> bool:
    app = client._transport.app  # type: ignore[attr-defined]
    return app.state.intake.store.latest(signal_id).confirmed


async def test_post_generates_an_id_and_keys_the_record_by_it(
    client: httpx.AsyncClient, bus: RecordingBus
) -> None:
    r = await client.post("/v1/signals", json=_body(zone_limit_kw=30, target_reduction_kw=None))
    assert r.status_code == 201
    signal_id = r.json()["signal_id"]
    assert len(signal_id) >= 16
    sub = bus.subscribe([topics.DEMAND_RESPONSE])
    [record] = await sub.batch(timeout=0)
    assert record.key == signal_id


async def test_explicit_window_and_shed(client: httpx.AsyncClient) -> None:
    start = datetime.now(UTC) + timedelta(minutes=5)
    r = await client.post(
        "/v1/signals",
        json=_body(
            duration=None,
            signal_type="SHED",
            target_reduction_kw=None,
            target_reduction_pct=100,
            start_ts=start.isoformat(),
            end_ts=(start + timedelta(hours=1)).isoformat(),
        ),
    )
    assert r.status_code == 201, r.text
    assert r.json()["signal_type"] == "SHED"
    assert datetime.fromisoformat(r.json()["start_ts"]) == start


# -- validation -------------------------------------------------------------------------
BAD = [
    (_body(zone_id="nowhere"), {"zone_id"}),
    (_body(duration=None, end_ts="2020-01-01T00:00:00Z"), {"end_ts"}),
    (
        _body(
            duration=None,
            start_ts="2030-01-01T10:00:00+02:00",
            end_ts="2030-01-01T09:00:00+02:00",
        ),
        {"end_ts"},
    ),
    (_body(zone_limit_kw=5), {"target_reduction_kw", "zone_limit_kw"}),
    (_body(target_reduction_kw=None), {"target_reduction_kw"}),
    (_body(target_reduction_kw=-1), {"target_reduction_kw"}),
    (_body(target_reduction_kw=None, target_reduction_pct=-3), {"target_reduction_pct"}),
    (_body(target_reduction_kw=None, target_reduction_pct=150), {"target_reduction_pct"}),
    (_body(target_reduction_kw=None, zone_limit_kw=-0.5), {"zone_limit_kw"}),
    (_body(start_ts="2030-01-01T10:00:00"), {"start_ts"}),
    (_body(duration=None, end_ts="2030-01-01T10:00:00"), {"end_ts"}),
    (_body(target_reduction_kw="lots"), {"target_reduction_kw"}),
    (_body(priority=7), {"priority"}),
    (_body(priority="high"), {"priority"}),
    (_body(signal_type="RESTORE"), {"signal_type"}),
    (_body(duration="soon"), {"duration"}),
    (_body(duration="-5m"), {"duration"}),
    (_body(duration=None), {"end_ts"}),
    (_body(end_ts="2030-01-01T10:00:00Z"), {"duration"}),
    (_body(modification=-1), {"modification"}),
    (_body(colour="red"), {"colour"}),
    ({"target_reduction_kw": 1, "duration": "5m"}, {"zone_id"}),
]


@pytest.mark.parametrize("body,fields", BAD)
async def test_422_names_the_bad_field(
    client: httpx.AsyncClient, bus: RecordingBus, body: dict[str, object], fields: set[str]
) -> None:
    r = await client.post("/v1/signals", json={k: v for k, v in body.items() if v is not None})
    assert r.status_code == 422, r.text
    assert field_names(r) == fields
    assert bus.published == []


async def test_422_names_every_bad_field_at_once(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/v1/signals",
        json={
            "zone_id": "nowhere",
            "target_reduction_kw": -2,
            "zone_limit_kw": 4,
            "start_ts": "2030-01-01T10:00:00",
            "end_ts": "2030-01-01T11:00:00Z",
            "priority": "x",
        },
    )
    assert r.status_code == 422
    assert field_names(r) == {
        "zone_id",
        "target_reduction_kw",
        "zone_limit_kw",
        "start_ts",
        "priority",
    }
    assert all(d["loc"] == ["body", d["field"]] for d in r.json()["detail"])


async def test_422_on_a_body_that_is_not_an_object(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/signals", content=b"[1, 2]")
    assert r.status_code == 422
    assert field_names(r) == {"body"}
    r = await client.post("/v1/signals", content=b"{nope")
    assert r.status_code == 422
    assert field_names(r) == {"body"}


# -- idempotency and revisions ----------------------------------------------------------
async def test_repost_of_the_same_revision_returns_the_stored_one(
    client: httpx.AsyncClient, bus: RecordingBus
) -> None:
    first = await client.post("/v1/signals", json=_body(signal_id="s-2", modification=3))
    again = await client.post("/v1/signals", json=_body(signal_id="s-2", modification=3))
    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json() == first.json()
    # No modification: the same content is a repeat too, even though start defaulted again.
    third = await client.post("/v1/signals", json=_body(signal_id="s-2"))
    assert third.status_code == 200
    assert third.json() == first.json()
    assert len(bus.published) == 1


async def test_stale_modification_is_409(client: httpx.AsyncClient, bus: RecordingBus) -> None:
    await client.post("/v1/signals", json=_body(signal_id="s-3", modification=2))
    same_mod = await client.post(
        "/v1/signals", json=_body(signal_id="s-3", modification=2, target_reduction_kw=20)
    )
    lower = await client.post("/v1/signals", json=_body(signal_id="s-3", modification=1))
    assert same_mod.status_code == 409
    assert lower.status_code == 409
    assert lower.json()["stored_modification"] == 2
    newer = await client.post(
        "/v1/signals", json=_body(signal_id="s-3", modification=5, target_reduction_kw=20)
    )
    assert newer.status_code == 201
    assert [(s.modification, s.target_reduction_kw) for s in bus.published] == [
        (2, 10),
        (5, 20),
    ]


async def test_changed_content_without_modification_is_the_next_one(
    client: httpx.AsyncClient,
) -> None:
    await client.post("/v1/signals", json=_body(signal_id="s-4"))
    r = await client.post("/v1/signals", json=_body(signal_id="s-4", target_reduction_kw=3))
    assert r.status_code == 201
    assert r.json()["modification"] == 1
    assert (await client.get("/v1/signals/s-4")).json()["target_reduction_kw"] == 3


# -- reads, cancel ------------------------------------------------------------------------
async def test_get_list_and_active_filter(client: httpx.AsyncClient, bridge: Bridge) -> None:
    await client.post("/v1/signals", json=_body(signal_id="live"))
    await client.post("/v1/signals", json=_body(signal_id="gone"))
    past = datetime.now(UTC) - timedelta(hours=2)
    old = await client.post(
        "/v1/signals",
        json=_body(signal_id="old", start_ts=past.isoformat(), duration="1h"),
    )
    assert old.status_code == 422 and field_names(old) == {"duration"}  # already ended
    await client.delete("/v1/signals/gone")
    every = {s["signal_id"] for s in (await client.get("/v1/signals")).json()}
    active = {s["signal_id"] for s in (await client.get("/v1/signals?active=true")).json()}
    assert every == {"live", "gone"}
    assert active == {"live"}
    # Once "live" has ended (its 15 minutes, an hour from now) it is no longer active.
    intake = bridge.app.state.intake
    later = datetime.now(UTC) + timedelta(hours=1)
    assert [s.signal.signal_id for s in intake.list(active=True, now=later)] == []
    assert (await client.get("/v1/signals/live")).json()["signal_id"] == "live"
    assert (await client.get("/v1/signals/nope")).status_code == 404


async def test_delete_publishes_a_restore(client: httpx.AsyncClient, bus: RecordingBus) -> None:
    await client.post("/v1/signals", json=_body(signal_id="s-5", modification=4))
    r = await client.delete("/v1/signals/s-5")
    assert r.status_code == 200
    restore = r.json()
    assert restore["signal_type"] == "RESTORE"
    assert restore["modification"] == 5
    assert restore["target_reduction_kw"] is None
    [on_bus] = await dr_records(bus)
    assert (on_bus.signal_type, on_bus.modification) == ("RESTORE", 5)
    # Cancelling again changes nothing; an older modification is stale now.
    assert (await client.delete("/v1/signals/s-5")).json() == restore
    assert len(bus.published) == 2
    stale = await client.post("/v1/signals", json=_body(signal_id="s-5", modification=5))
    assert stale.status_code == 409
    assert (await client.delete("/v1/signals/unknown")).status_code == 404


async def test_failed_publish_is_retried_not_dropped(
    client: httpx.AsyncClient, bus: RecordingBus
) -> None:
    bus.fail_next = 3
    r = await client.post("/v1/signals", json=_body(signal_id="s-6"))
    assert r.status_code == 201
    assert [s.signal_id for s in bus.published] == ["s-6"]
    assert bus.fail_next == 0


# -- ops ----------------------------------------------------------------------------------
async def test_metrics_and_openapi(client: httpx.AsyncClient) -> None:
    await client.post("/v1/signals", json=_body(signal_id="s-7"))
    text = (await client.get("/metrics")).text
    assert 'gridctl_dr_signals_total{signal_type="CURTAIL",source="api"}' in text
    assert "gridctl_dr_confirm_seconds_bucket" in text
    spec = (await client.get("/openapi.json")).json()
    assert {"/v1/signals", "/v1/signals/{signal_id}", "/v1/stations", "/healthz"} <= set(
        spec["paths"]
    )
    body = spec["paths"]["/v1/signals"]["post"]["requestBody"]["content"]["application/json"]
    assert "zone_id" in body["schema"]["properties"]
    assert "HTTPBearer" in spec["components"]["securitySchemes"]


async def test_concurrent_posts_of_one_new_signal_publish_once(
    client: httpx.AsyncClient, bus: RecordingBus
) -> None:
    import asyncio

    responses = await asyncio.gather(
        *(client.post("/v1/signals", json=_body(signal_id="race")) for _ in range(5))
    )
    assert sorted(r.status_code for r in responses) == [200, 200, 200, 200, 201]
    assert len({r.text for r in responses}) == 1
    assert [(s.signal_id, s.modification) for s in bus.published] == [("race", 0)]


# -- what gridctl does with a signal ------------------------------------------------------
async def test_infeasible_zone_limit_is_said_in_the_201(client: httpx.AsyncClient) -> None:
    # zone-a: cs-1 and cs-2, three-phase 230 V: 6 A x 3 x 230 V = 4.14 -> 4.2 kW each.
    r = await client.post("/v1/signals", json=_body(target_reduction_kw=None, zone_limit_kw=8))
    assert r.status_code == 201
    (warning,) = r.json()["warnings"]
    assert "8.4 kW" in warning and "0.4 kW above the 8 kW limit" in warning
    assert r.json()["state"] == "pending"  # the pipeline has not evaluated it yet
    ok = await client.post("/v1/signals", json=_body(target_reduction_kw=None, zone_limit_kw=9))
    assert ok.json()["warnings"] == []


async def test_get_carries_the_pipelines_state(client: httpx.AsyncClient, bridge: Bridge) -> None:
    r = await client.post("/v1/signals", json=_body(signal_id="st-1"))
    assert r.status_code == 201
    state = DrSignalState(
        signal_id="st-1", zone_id="zone-a", state="infeasible", enforced_by="st-1",
        baseline_basis="pre_start", baseline_kw=20.0, cap_kw=10.0, shortfall_kw=2.2,
        uncontrollable_stations=1,
    )  # fmt: skip
    await bridge.bus.publish(topics.DR_SIGNAL_STATES, "st-1", encode(state))
    async with asyncio.timeout(10):
        while (body := (await client.get("/v1/signals/st-1")).json())["state"] == "pending":
            await asyncio.sleep(0.05)
    assert body["state"] == "infeasible"
    assert body["state_detail"]["shortfall_kw"] == 2.2
    assert body["warnings"] == [
        "infeasible: floors and uncontrollable load exceed the cap by 2.2 kW"
    ]
    listed = (await client.get("/v1/signals")).json()
    assert [s["state"] for s in listed if s["signal_id"] == "st-1"] == ["infeasible"]
    await bridge.bus.publish(topics.DR_SIGNAL_STATES, "st-1", None)  # no longer in force
    async with asyncio.timeout(10):
        while (await client.get("/v1/signals/st-1")).json()["state"] != "pending":
            await asyncio.sleep(0.05)
