"""A small synchronous client of the bridge's HTTP API, for the CLI and scripts.

Resolves the token the way the CLI documents it: an explicit token (``--token`` or
``GRIDCTL_API_TOKEN``), else the token file an embedded ``gridctl run`` wrote into the
data directory. Errors become :class:`ApiError` with the HTTP status and the per-field
details of a 422, so callers can print them by field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from dr_bridge.errors import BridgeError
from dr_bridge.token import read_token, token_path


class ApiError(BridgeError):
    """The API refused a call or could not be reached (``status`` 0)."""

    def __init__(self, status: int, message: str, fields: list[tuple[str, str]] | None = None):
        self.status = status
        self.fields = fields or []
        super().__init__(message)


def resolve_token(token: str | None, data_dir: str | Path) -> str:
    """The explicit token, else the one in ``<data_dir>/api-token``; ApiError if neither."""
    if token:
        return token
    stored = read_token(data_dir)
    if stored is None:
        raise ApiError(
            0,
            f"no API token: pass --token, set GRIDCTL_API_TOKEN, or point --data-dir at the "
            f"directory of `gridctl run` (looked for {token_path(data_dir)})",
        )
    return stored


class ApiClient:
    """``ApiClient(base_url, token)``; every method returns decoded JSON or raises ApiError."""

    def __init__(
        self, base_url: str, token: str, *, transport: httpx.BaseTransport | None = None
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"},
            timeout=30.0,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, *, text: bool = False, **kw: Any) -> Any:
        try:
            r = self._http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise ApiError(0, f"cannot reach the API at {self._http.base_url}: {exc}") from exc
        if r.status_code < 400:
            return r.text if text else r.json()
        try:
            detail = r.json().get("detail")
        except ValueError:
            detail = r.text
        fields: list[tuple[str, str]] = []
        if isinstance(detail, list):
            for d in detail:
                if isinstance(d, dict):
                    name = d.get("field") or ".".join(str(p) for p in d.get("loc", [])[1:])
                    fields.append((str(name), str(d.get("msg"))))
            message = "; ".join(f"{f}: {m}" for f, m in fields)
        else:
            message = str(detail)
        raise ApiError(r.status_code, f"HTTP {r.status_code}: {message}", fields)

    # -- signals -----------------------------------------------------------------------
    def send_signal(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", "/v1/signals", json=body)  # type: ignore[no-any-return]

    def cancel_signal(self, signal_id: str) -> dict[str, Any]:
        return self._call("DELETE", f"/v1/signals/{signal_id}")  # type: ignore[no-any-return]

    def get_signal(self, signal_id: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/signals/{signal_id}")  # type: ignore[no-any-return]

    def list_signals(self, active: bool = False) -> list[dict[str, Any]]:
        params = {"active": "true"} if active else {}
        return self._call("GET", "/v1/signals", params=params)  # type: ignore[no-any-return]

    def signal_report(self, signal_id: str) -> dict[str, Any]:
        """The DR event report of a signal (totals and minutes)."""
        return self._call("GET", f"/v1/signals/{signal_id}/report")  # type: ignore[no-any-return]

    def signal_report_csv(self, signal_id: str) -> str:
        return self._call(  # type: ignore[no-any-return]
            "GET", f"/v1/signals/{signal_id}/report", params={"format": "csv"}, text=True
        )

    # -- stations ----------------------------------------------------------------------
    def import_stations(self, stations: list[dict[str, Any]]) -> dict[str, Any]:
        return self._call("POST", "/v1/stations", json=stations)  # type: ignore[no-any-return]

    def list_stations(self) -> list[dict[str, Any]]:
        return self._call("GET", "/v1/stations")  # type: ignore[no-any-return]
