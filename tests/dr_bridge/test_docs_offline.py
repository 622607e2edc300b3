"""``/docs`` and ``/redoc`` render offline, and the OpenAPI document explains each field.

A real bridge API (uvicorn on loopback) in headless Chromium with every non-loopback
request refused: the pages must come up from the packaged assets alone.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from dr_bridge import Bridge, BridgeSettings
from pipeline.bus import LocalBus
from pipeline.embedded_pg import free_port
from tests.dr_bridge.browser import browser_page, needs_chromium

pytestmark = pytest.mark.timeout(120)
TOKEN = "docs-test-token"


@pytest.fixture
async def api(tmp_path: Path):  # type: ignore[no-untyped-def]
    bus = LocalBus()
    await bus.start()
    settings = BridgeSettings(data_dir=tmp_path, tokens=(TOKEN,), port=free_port())
    async with Bridge(bus, settings) as bridge:
        yield bridge.api_url
    await bus.stop()


@needs_chromium
async def test_swagger_ui_renders_with_the_network_off(api: str) -> None:
    async with browser_page() as (page, refused):
        await page.goto(f"{api}/docs")  # type: ignore[attr-defined]
        await page.wait_for_selector(".opblock-summary-path", timeout=30_000)  # type: ignore[attr-defined]
        paths = await page.locator(".opblock-summary-path").all_inner_texts()  # type: ignore[attr-defined]
        title = await page.locator(".info").first.inner_text()  # type: ignore[attr-defined]
    assert refused == []
    assert "gridctl DR bridge" in title
    assert {"/v1/signals", "/v1/zones", "/v1/zones/{zone_id}", "/healthz"} <= {
        p.replace("\u200b", "") for p in paths
    }


@needs_chromium
async def test_redoc_renders_with_the_network_off(api: str) -> None:
    async with browser_page() as (page, refused):
        await page.goto(f"{api}/redoc")  # type: ignore[attr-defined]
        await page.wait_for_selector("h1", timeout=30_000)  # type: ignore[attr-defined]
        heading = await page.locator("h1").first.inner_text()  # type: ignore[attr-defined]
        text = await page.locator("body").inner_text()  # type: ignore[attr-defined]
    assert refused == []
    assert "gridctl DR bridge" in heading
    assert "zone_limit_kw" in text


async def test_every_field_is_described_and_the_one_of_rules_are_in_the_schema(api: str) -> None:
    async with httpx.AsyncClient(base_url=api) as client:
        doc = (await client.get("/openapi.json")).json()
        for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js"):
            assert (await client.get(f"/assets/docs/{asset}")).status_code == 200
    undescribed = []

    def walk(node: object, where: str) -> None:
        if isinstance(node, dict):
            for name, prop in (node.get("properties") or {}).items():
                if isinstance(prop, dict) and not prop.get("description"):
                    undescribed.append(f"{where}.{name}")
            for key, value in node.items():
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}[{i}]")

    walk(doc, "")
    assert undescribed == []
    body = doc["paths"]["/v1/signals"]["post"]["requestBody"]["content"]["application/json"]
    schema = body["schema"]
    amounts, window = schema["allOf"]
    assert [alt["required"] for alt in amounts["oneOf"]] == [
        ["target_reduction_kw"], ["target_reduction_pct"], ["zone_limit_kw"]
    ]  # fmt: skip
    assert [alt["required"] for alt in window["oneOf"]] == [["end_ts"], ["duration"]]
    assert "kW" in schema["properties"]["zone_limit_kw"]["description"]
    assert schema["properties"]["duration"]["examples"] == ["1h"]
