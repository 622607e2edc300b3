"""Read a stations CSV for ``gridctl stations import``: every bad row by line and field.

Columns: ``station_id, zone_id, max_station_kw, contract_max_kw, min_active_kw,
charging_rate_unit, phases, voltage_v, password`` (the simulator's ``--export-stations``
writes the same). Passwords are hashed here, on the operator's machine, with
:func:`pipeline.secrets.hash_password`; only the hash goes to the API. Nothing is sent
unless every row is valid.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from dr_bridge.errors import SignalInvalid
from dr_bridge.models import StationIn
from pipeline.contracts import StationZone
from pipeline.secrets import hash_password

#: The station contract's fields, then the password the CLI hashes.
COLUMNS = (*StationZone.__struct_fields__, "password")
REQUIRED = ("station_id", "zone_id", "max_station_kw", "contract_max_kw", "password")
_PLACEHOLDER_HASH = "scrypt$" + "0" * 32 + "$" + "0" * 64  # validates the rest before hashing


def read_stations(
    path: str | Path, *, hasher: Callable[[str], str] = hash_password
) -> list[dict[str, Any]]:
    """Rows as API payloads (``password_hash`` instead of ``password``).

    Raises :class:`SignalInvalid` with fields named ``line N: column``; line 1 is the header.
    """
    text = Path(path).read_text(encoding="utf-8-sig")
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in reader.fieldnames or []]
    errors: list[tuple[str, str]] = []
    missing = [c for c in REQUIRED if c not in header]
    unknown = [c for c in header if c not in COLUMNS]
    if missing:
        errors.append(("line 1", f"missing column(s): {', '.join(missing)}"))
    if unknown:
        errors.append(("line 1", f"unknown column(s): {', '.join(unknown)}"))
    if errors:
        raise SignalInvalid(errors)
    rows: list[tuple[int, dict[str, Any], str]] = []
    seen: dict[str, int] = {}
    for line_no, raw in enumerate(reader, start=2):
        row = {(k or "").strip(): (v or "").strip() for k, v in raw.items() if k is not None}
        if not any(row.values()):
            continue  # blank line
        password = row.pop("password", "")
        payload: dict[str, Any] = {k: v for k, v in row.items() if v != ""}
        if str(payload.get("phases", "")).isdigit():
            payload["phases"] = int(payload["phases"])  # a Literal[1, 3] takes no strings
        if not password:
            errors.append((f"line {line_no}: password", "required"))
        try:
            StationIn.model_validate({**payload, "password_hash": _PLACEHOLDER_HASH})
        except ValidationError as exc:
            for e in exc.errors():
                field = ".".join(str(p) for p in e["loc"]) or "row"
                errors.append((f"line {line_no}: {field}", e["msg"]))
        sid = row.get("station_id", "")
        if sid and sid in seen:
            errors.append((f"line {line_no}: station_id", f"duplicate of line {seen[sid]}"))
        seen.setdefault(sid, line_no)
        rows.append((line_no, payload, password))
    if errors:
        raise SignalInvalid(errors)
    if not rows:
        raise SignalInvalid([("file", "no stations")])
    out = []
    for _, payload, password in rows:
        station = StationIn.model_validate({**payload, "password_hash": hasher(password)})
        out.append(station.model_dump())
    return out


def line_of(index_field: str, first_line: int = 2) -> str:
    """``[3].zone_id`` (an API 422 field) -> ``line 5: zone_id`` (data rows from line 2)."""
    if index_field.startswith("[") and "]" in index_field:
        index, _, rest = index_field[1:].partition("]")
        if index.isdigit():
            return f"line {int(index) + first_line}: {rest.lstrip('.') or 'row'}"
    return index_field
