"""The API explains itself offline: Swagger UI and ReDoc from packaged assets, every field
described with its unit and an example, and the one-of rules in the schema.

The assets come from the ``fastapi-offline`` wheel (its ``static/`` folder: Swagger UI's
bundle and CSS, ReDoc's standalone script), served under ``/assets/docs``; FastAPI's own
pages load them from a CDN, which leaves ``/docs`` blank on a site without Internet.

Descriptions live here, by field name, and are applied to every schema of the generated
document (request bodies, responses, errors), so the request models stay about
validation and one name reads the same everywhere.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = "/assets/docs"

#: field -> (description with unit, example)
FIELDS: dict[str, tuple[str, Any]] = {
    "signal_id": (
        "Signal id: letters, digits and . _ : @ -; generated when absent. A later "
        "modification of the same id replaces the earlier one.",
        "north-peak-2026-01-05",
    ),
    "modification": (
        "Revision number of the signal (0 first). Absent in a request: the next one if "
        "the content changed, else the stored revision is returned.",
        0,
    ),
    "zone_id": ("Zone the signal applies to: a zone of the imported stations.", "zone-north"),
    "signal_type": (
        "CURTAIL keeps active sessions at their minimum; SHED may take stations to 0; "
        "RESTORE ends the signal.",
        "CURTAIL",
    ),
    "target_reduction_kw": (
        "Reduce the zone by this many kW below its baseline (demand at the signal's "
        "start). Exactly one of target_reduction_kw, target_reduction_pct, zone_limit_kw.",
        50.0,
    ),
    "target_reduction_pct": (
        "Reduce the zone by this percentage (0-100) of its baseline. Exactly one amount.",
        20.0,
    ),
    "zone_limit_kw": ("Cap the zone's load at this many kW. Exactly one amount.", 120.0),
    "start_ts": (
        "Start, RFC 3339 with a UTC offset; default: now.",
        "2026-01-05T17:00:00+00:00",
    ),
    "end_ts": (
        "End, RFC 3339 with a UTC offset, after start_ts; limits lapse on the chargers "
        "then (validTo). Give end_ts or duration.",
        "2026-01-05T18:00:00+00:00",
    ),
    "duration": (
        "Instead of end_ts: how long from start_ts (90s, 15m, 1h30m, or ISO 8601 PT15M).",
        "1h",
    ),
    "priority": ("1 emergency, 2 economic, 3 optional; the lowest cap wins per zone.", 2),
    "source": ("Where the signal came from: api, openadr2 or openadr3.", "api"),
    "received_ts": ("When gridctl accepted the signal (RFC 3339, UTC).", "2026-01-05T16:59:58Z"),
    "event_id": (
        "The utility's event this signal belongs to (its intervals and revisions share "
        "one baseline).",
        "evt-123",
    ),
    "event_priority": ("The utility's own priority number for the event, as sent.", 1),
    "station_id": ("Charge point identity, as in its OCPP URL.", "CP-0042"),
    "max_station_kw": ("What the station's hardware can draw, kW.", 22.0),
    "contract_max_kw": ("What the site's contract allows the station, kW.", 11.0),
    "min_active_kw": (
        "The least power a charging session can follow, kW (0: 6 A per phase).",
        4.1,
    ),
    "charging_rate_unit": ("Unit the station takes limits in: W or A.", "W"),
    "phases": ("Phases the station is connected on: 1 or 3.", 3),
    "voltage_v": ("Phase voltage, V (converts kW to A for stations limited in A).", 230.0),
    "password_hash": ("scrypt$<salt hex>$<hash hex> of the station's Basic-auth password.", None),
    "loc": ("Where the bad value is: body then the field.", ["body", "zone_limit_kw"]),
    "field": ("The request field that is wrong.", "zone_limit_kw"),
    "msg": ("What is wrong with it.", "Input should be greater than or equal to 0"),
    "detail": ("Every bad field, or one sentence.", None),
    "unreadable": (
        "Why the stored revision no longer decodes (it stays listed, never hidden).",
        None,
    ),
    "type": ("Kind of validation error.", "greater_than_equal"),
    "input": ("The value that was refused.", -5),
    "ctx": ("Parameters of the rule that failed.", {"ge": 0}),
    "ocpp_version": ("OCPP version the station speaks: 1.6 or 2.0.1.", "1.6"),
    "last_command": ("The last command gridctl sent the station.", "SetChargingProfile"),
    "last_result_ts": ("When the station answered it (RFC 3339, UTC).", None),
    "compliance": (
        "compliant when the zone's load is at or under the cap, else over cap.",
        "compliant",
    ),
}
#: fields described by their own model (schemas.py) keep that description
_AMOUNTS = ["target_reduction_kw", "target_reduction_pct", "zone_limit_kw"]

#: JSON Schema of the rules pydantic cannot express: exactly one amount; end or duration
SIGNAL_RULES: dict[str, Any] = {
    "allOf": [
        {
            "description": "exactly one of the three amounts",
            "oneOf": [
                {"required": [a], "not": {"anyOf": [{"required": [b]} for b in _AMOUNTS if b != a]}}
                for a in _AMOUNTS
            ],
        },
        {
            "description": "end_ts or duration, not both",
            "oneOf": [
                {"required": ["end_ts"], "not": {"required": ["duration"]}},
                {"required": ["duration"], "not": {"required": ["end_ts"]}},
            ],
        },
    ]
}


def _describe(schema: dict[str, Any]) -> None:
    for name, prop in (schema.get("properties") or {}).items():
        if name not in FIELDS:
            continue
        description, example = FIELDS[name]
        prop.setdefault("description", description)
        if example is not None:
            prop.setdefault("examples", [example])


def _walk(node: Any) -> None:
    if isinstance(node, dict):
        if "properties" in node:
            _describe(node)
        for value in node.values():
            _walk(value)
    elif isinstance(node, list):
        for value in node:
            _walk(value)


#: The pages may load only from this server: ReDoc's bundle would fetch its logo from a
#: CDN (an image only, but a request off the site); the browser never makes it.
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self' 'unsafe-inline'; worker-src 'self' blob:; connect-src 'self'"
)


def _local_only(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = CSP
    return page


def install(app: FastAPI) -> None:
    """Serve ``/docs`` and ``/redoc`` from packaged assets; describe every field."""
    static = files("fastapi_offline") / "static"
    app.mount(ASSETS, StaticFiles(directory=str(static)), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return _local_only(
            get_swagger_ui_html(
                openapi_url=openapi_url,
                title=f"{app.title} - Swagger UI",
                swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
                swagger_css_url=f"{ASSETS}/swagger-ui.css",
                swagger_favicon_url=f"{ASSETS}/favicon.png",
            )
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return _local_only(
            get_redoc_html(
                openapi_url=openapi_url,
                title=f"{app.title} - ReDoc",
                redoc_js_url=f"{ASSETS}/redoc.standalone.js",
                redoc_favicon_url=f"{ASSETS}/favicon.png",
                with_google_fonts=False,
            )
        )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            _walk(doc)
            body = doc["paths"]["/v1/signals"]["post"]["requestBody"]["content"]
            body["application/json"]["schema"].update(SIGNAL_RULES)
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
