"""The bridge as one component: both buses, restart re-sends, 503 then retried, tokens, VENs."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from dr_bridge import Bridge, BridgeSettings
from dr_bridge.revisions import RevisionStore
from dr_bridge.token import ensure_token, read_token
from pipeline import topics
from pipeline.bus import Bus
from pipeline.contracts import DemandResponseSignal, decode
from pipeline.secrets import hash_password
from tests.dr_bridge.conftest import TOKEN, RecordingBus, add_stations
from tests.dr_bridge.oa2_vtn import Vtn, add_simple

HASH = hash_password("pw", salt=b"0123456789abcdef")


async def wait_for(predicate, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    """Wait until ``predicate()`` holds (a liveness bound, not a speed assertion)."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


async def latest_signal(bus: Bus, signal_id: str, modification: int) -> DemandResponseSignal:
    """Read grid.demand_response until ``signal_id`` at ``modification`` shows up.

    LocalBus compacts the upsert topic (only the latest record per key is replayed) and
    Tansu does not, so wait for the revision rather than count records.
    """
    sub = bus.subscribe([topics.DEMAND_RESPONSE], group=None, from_beginning=True)
    try:
        async with asyncio.timeout(30):
            while True:
                for r in await sub.batch(timeout=0.5):
                    if r.key == signal_id and r.value is not None:
                        s = decode(DemandResponseSignal, r.value)
                        if s.modification == modification:
                            return s
    finally:
        await sub.close()


async def test_api_on_both_buses(any_bus: Bus, tmp_path: Path) -> None:
    suffix = uuid.uuid4().hex[:8]
    zone, station, signal_id = f"z-{suffix}", f"cs-{suffix}", f"sig-{suffix}"
    settings = BridgeSettings(data_dir=tmp_path, tokens=(TOKEN,))
    async with (
        Bridge(any_bus, settings, serve_api=False) as bridge,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=bridge.app),
            base_url="http://b",
            headers={"Authorization": f"Bearer {TOKEN}"},
        ) as client,
    ):
        stations = [
            {
                "station_id": station,
                "zone_id": zone,
                "max_station_kw": 22,
                "contract_max_kw": 22,
                "password_hash": HASH,
            }
        ]
        assert (await client.post("/v1/stations", json=stations)).status_code == 201
        assert [s["station_id"] for s in (await client.get("/v1/stations")).json()] == [station]
        r = await client.post(
            "/v1/signals",
            json={
                "signal_id": signal_id,
                "zone_id": zone,
                "zone_limit_kw": 40,
                "duration": "PT30M",
            },
        )
        assert r.status_code == 201, r.text
        first = await latest_signal(any_bus, signal_id, 0)
        assert (first.signal_type, first.zone_limit_kw) == ("CURTAIL", 40.0)
        assert (await client.delete(f"/v1/signals/{signal_id}")).status_code == 200
        restore = await latest_signal(any_bus, signal_id, 1)
        assert (restore.signal_type, restore.zone_limit_kw) == ("RESTORE", None)


async def test_stations_all_or_nothing(bus: RecordingBus, tmp_path: Path) -> None:
    async with (
        Bridge(bus, BridgeSettings(data_dir=tmp_path, tokens=(TOKEN,)), serve_api=False) as bridge,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=bridge.app),
            base_url="http://b",
            headers={"Authorization": f"Bearer {TOKEN}"},
        ) as client,
    ):
        good = {
            "station_id": "ok-1",
            "zone_id": "z",
            "max_station_kw": 22,
            "contract_max_kw": 22,
            "password_hash": HASH,
        }
        bad = {
            **good,
            "station_id": "bad-1",
            "phases": 2,
            "password_hash": "plain",
            "max_station_kw": -1,
        }
        r = await client.post("/v1/stations", json=[good, bad, good])
        assert r.status_code == 422
        fields = {d["field"] for d in r.json()["detail"]}
        assert fields == {"[1].phases", "[1].password_hash", "[1].max_station_kw"}
        dup = await client.post("/v1/stations", json=[good, good])
        assert {d["field"] for d in dup.json()["detail"]} == {"[1].station_id"}
        assert (await client.get("/v1/stations")).json() == []
    sub = bus.subscribe([topics.STATION_ZONES, topics.STATION_CREDENTIALS])
    assert await sub.batch(timeout=0) == []


async def test_a_restart_publishes_what_the_last_run_left_unconfirmed(
    bus: RecordingBus, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    signal = DemandResponseSignal(
        signal_id="left-over",
        zone_id="z",
        signal_type="CURTAIL",
        target_reduction_pct=10,
        start_ts=now,
        end_ts=now + timedelta(hours=1),
        received_ts=now,
    )
    store = RevisionStore(tmp_path)  # a run that stored the revision and died before the bus
    store.commit_revision("api", "left-over", 0, "", "h", [signal])
    store.close()
    async with Bridge(
        bus, BridgeSettings(data_dir=tmp_path, tokens=(TOKEN,)), serve_api=False
    ) as bridge:
        await wait_for(lambda: len(bus.published) == 1)
        assert bus.published[0].signal_id == "left-over"
        await wait_for(lambda: bridge.store.latest("left-over").confirmed)  # type: ignore[union-attr]
    # And the run after that has nothing left to send.
    async with Bridge(bus, BridgeSettings(data_dir=tmp_path, tokens=(TOKEN,)), serve_api=False):
        await asyncio.sleep(0)
    assert len(bus.published) == 1


async def test_503_while_the_bus_refuses_then_retried_until_confirmed(
    bus: RecordingBus, tmp_path: Path
) -> None:
    await add_stations(bus, ("cs-1", "zone-a"))
    settings = BridgeSettings(data_dir=tmp_path, tokens=(TOKEN,), confirm_timeout_s=0.3)
    async with (
        Bridge(bus, settings, serve_api=False) as bridge,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=bridge.app),
            base_url="http://b",
            headers={"Authorization": f"Bearer {TOKEN}"},
        ) as client,
    ):
        bus.fail_next = 10**9
        body = {
            "signal_id": "s-503",
            "zone_id": "zone-a",
            "target_reduction_kw": 3,
            "duration": "10m",
        }
        r = await client.post("/v1/signals", json=body)
        assert r.status_code == 503
        assert r.headers["retry-after"] == "1"
        assert bus.published == []
        bus.fail_next = 0  # the bus recovers; the queued record goes out by itself
        await wait_for(lambda: len(bus.published) == 1)
        again = await client.post("/v1/signals", json=body)
        assert again.status_code == 200
        assert again.json()["signal_id"] == "s-503"
    assert [s.signal_id for s in bus.published] == ["s-503"]


async def test_generated_token_is_kept_private_and_shown_once(
    bus: RecordingBus, tmp_path: Path
) -> None:
    first = Bridge(bus, BridgeSettings(data_dir=tmp_path), serve_api=False)
    await first.start()
    await first.stop()
    assert first.token is not None and first.token_file == tmp_path / "api-token"
    assert (tmp_path / "api-token").stat().st_mode & 0o777 == 0o600
    second = Bridge(bus, BridgeSettings(data_dir=tmp_path), serve_api=False)
    await second.start()
    assert second.token is None  # not shown again
    assert second.tokens == (first.token,) == (read_token(tmp_path),)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=second.app), base_url="http://b"
    ) as client:
        ok = await client.get("/v1/signals", headers={"Authorization": f"Bearer {first.token}"})
        assert ok.status_code == 200
    await second.stop()
    assert ensure_token(tmp_path) == (first.token, False)


async def test_bridge_serves_http_and_runs_the_openadr2_ven(
    bus: RecordingBus,
    vtn: Vtn,
    tmp_path: Path,
) -> None:
    await add_stations(bus, ("cs-1", "zone-a"))
    settings = BridgeSettings(
        data_dir=tmp_path,
        tokens=(TOKEN,),
        port=0,
        openadr2_vtn_url=vtn.url,
        openadr2_ven_name="gridctl-test",
    )
    async with Bridge(bus, settings) as bridge:
        assert bridge.port != 0
        async with httpx.AsyncClient(base_url=bridge.api_url or "") as client:
            health = (await client.get("/healthz")).json()
            assert health["status"] == "ok" and health["components"]["bridge"]["ok"] is True
            assert (await client.get("/v1/signals")).status_code == 401
        [ven] = bridge.vens
        add_simple(vtn, "ev-b", 1, [{"group_id": "zone-a"}])
        await ven.poll_now()
        assert [(s.zone_id, s.target_reduction_pct) for s in bus.published] == [("zone-a", 20.0)]
        assert vtn.opts["ev-b"] == "optIn"


@pytest.mark.parametrize("bad", ["not-a-file.json"])
def test_bad_mapping_file_is_a_config_error(tmp_path: Path, bad: str) -> None:
    from dr_bridge.errors import ConfigError

    settings = BridgeSettings(
        openadr2_vtn_url="http://x", openadr2_mapping_file=str(tmp_path / bad)
    )
    with pytest.raises(ConfigError):
        _ = settings.openadr2
    good = tmp_path / "map.json"
    good.write_text('{"ven-1": ["zone-a"]}')
    s2 = BridgeSettings(openadr2_vtn_url="http://x", openadr2_mapping_file=str(good))
    assert s2.openadr2 is not None and s2.openadr2.ven_zones == {"ven-1": ["zone-a"]}


def test_unset_openadr_settings_fall_back_to_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GRIDCTL_OPENADR3_CLIENT_ID", "env-client")
    monkeypatch.setenv("GRIDCTL_OPENADR3_CLIENT_SECRET", "env-secret")
    monkeypatch.setenv("GRIDCTL_OPENADR2_CA_FILE", "/etc/ca.pem")
    s = BridgeSettings(openadr3_vtn_url="http://vtn3", openadr2_vtn_url="http://vtn2")
    assert s.openadr3 is not None and s.openadr2 is not None
    assert (s.openadr3.client_id, s.openadr3.client_secret) == ("env-client", "env-secret")
    assert s.openadr2.ca_file == "/etc/ca.pem"
    explicit = BridgeSettings(openadr3_vtn_url="http://vtn3", openadr3_client_id="flag")
    assert explicit.openadr3 is not None and explicit.openadr3.client_id == "flag"
    assert BridgeSettings().openadr3 is None


async def test_stopped_during_an_outage_then_sent_by_the_next_start(
    bus: RecordingBus, tmp_path: Path
) -> None:
    await add_stations(bus, ("cs-1", "zone-a"))
    settings = BridgeSettings(data_dir=tmp_path, tokens=(TOKEN,), confirm_timeout_s=0.2)
    bus.fail_next = 10**9
    async with (
        Bridge(bus, settings, serve_api=False) as bridge,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=bridge.app),
            base_url="http://b",
            headers={"Authorization": f"Bearer {TOKEN}"},
        ) as client,
    ):
        body = {
            "signal_id": "s-out",
            "zone_id": "zone-a",
            "zone_limit_kw": 9,
            "duration": "10m",
        }
        assert (await client.post("/v1/signals", json=body)).status_code == 503
    assert bus.published == []
    bus.fail_next = 0
    async with Bridge(bus, settings, serve_api=False):
        await wait_for(lambda: len(bus.published) == 1)
    assert [(s.signal_id, s.zone_limit_kw) for s in bus.published] == [("s-out", 9.0)]


@pytest.mark.parametrize(
    "station_id",
    ["x" * 49, "CP:1", "CP/1", "CP\n1", "CP\x001", "CP 1"],
)
async def test_stations_the_gateway_cannot_serve_are_refused(
    bus: RecordingBus, tmp_path: Path, station_id: str
) -> None:
    """An id over OCPP's 48 characters, with ':' (it ends the Basic-auth username), '/'
    (it is the last URL segment) or control characters could never connect: 422."""
    async with (
        Bridge(bus, BridgeSettings(data_dir=tmp_path, tokens=(TOKEN,)), serve_api=False) as bridge,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=bridge.app),
            base_url="http://b",
            headers={"Authorization": f"Bearer {TOKEN}"},
        ) as client,
    ):
        row = {"zone_id": "z", "max_station_kw": 22, "contract_max_kw": 22, "password_hash": HASH}
        ok = {**row, "station_id": "x" * 48}
        r = await client.post("/v1/stations", json=[ok, {**row, "station_id": station_id}])
        assert r.status_code == 422
        assert {d["field"] for d in r.json()["detail"]} == {"[1].station_id"}
        assert (await client.post("/v1/stations", json=[ok])).status_code == 201
