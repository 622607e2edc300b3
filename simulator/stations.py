"""Simulated stations: generate them, write them as the CSV ``gridctl stations import``
reads, and read them back.

Generation is deterministic given the seed, so ``gridctl simulate --export-stations``
and a later ``gridctl simulate --seed`` with the same arguments agree on ids, zones,
hardware and passwords without passing a file around. Passwords are derived from the
seed and the station id (HMAC-SHA256): fine for a simulator, never for real stations.

Columns: station_id, zone_id, max_station_kw, contract_max_kw, min_active_kw,
charging_rate_unit, phases, voltage_v, password.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import math
import random
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from pipeline.contracts import StationZone
from simulator.errors import ConfigError
from simulator.physics import AC_FLOOR_AMPS, StationSpec

#: ``gridctl stations import`` columns: the station contract's fields, then the password.
COLUMNS = (*StationZone.__struct_fields__, "password")

#: (share, max kW, phases): a typical AC mix of wallboxes and public posts.
_HARDWARE = ((0.60, 11.0, 3), (0.25, 22.0, 3), (0.15, 7.4, 1))


def station_id(index: int, total: int) -> str:
    """``sim-0001`` ... (1-based, at least four digits, wider for bigger fleets)."""
    return f"sim-{index + 1:0{max(4, len(str(total)))}d}"


def zone_id(index: int, zones: int) -> str:
    return f"zone-{index % zones + 1:0{max(2, len(str(zones)))}d}"


def derive_password(seed: int, sid: str) -> str:
    """The simulator's password for ``sid`` under ``seed`` (24 hex characters)."""
    return hmac.new(f"gridctl-sim:{seed}".encode(), sid.encode(), hashlib.sha256).hexdigest()[:24]


def is_201(index: int, ratio_201: float) -> bool:
    """Spread 2.0.1 stations evenly: exactly round(N x ratio) of the first N (Bresenham)."""
    return math.floor((index + 1) * ratio_201 + 1e-9) > math.floor(index * ratio_201 + 1e-9)


def _floor_kw(phases: int, voltage: float) -> float:
    return math.ceil(AC_FLOOR_AMPS * voltage * phases / 100.0) / 10.0


def generate(
    count: int,
    *,
    zones: int = 1,
    seed: int = 0,
    ratio_201: float = 0.5,
    reject_max_profile_fraction: float = 0.0,
    password: str | None = None,
    voltage_v: float = 230.0,
) -> list[StationSpec]:
    """``count`` stations round-robin over ``zones``, hardware mixed by ``_HARDWARE``."""
    if count < 1 or zones < 1:
        raise ConfigError("need at least one charger and one zone")
    if not 0.0 <= ratio_201 <= 1.0 or not 0.0 <= reject_max_profile_fraction <= 1.0:
        raise ConfigError("ratio and fraction must be between 0 and 1")
    rng = random.Random(f"stations:{seed}")
    out = []
    for i in range(count):
        sid = station_id(i, count)
        pick, acc = rng.random(), 0.0
        kw, phases = _HARDWARE[-1][1], _HARDWARE[-1][2]
        for share, hw_kw, hw_phases in _HARDWARE:
            acc += share
            if pick < acc:
                kw, phases = hw_kw, hw_phases
                break
        out.append(
            StationSpec(
                station_id=sid,
                zone_id=zone_id(i, zones),
                max_station_kw=kw,
                contract_max_kw=kw,
                min_active_kw=_floor_kw(phases, voltage_v),
                charging_rate_unit="A" if rng.random() < 0.3 else "W",
                phases=phases,
                voltage_v=voltage_v,
                password=password if password is not None else derive_password(seed, sid),
                ocpp_version="2.0.1" if is_201(i, ratio_201) else "1.6",
                reject_max_profile=rng.random() < reject_max_profile_fraction,
            )
        )
    return out


def to_csv(stations: Iterable[StationSpec]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for s in stations:
        writer.writerow(
            [
                s.station_id,
                s.zone_id,
                f"{s.max_station_kw:g}",
                f"{s.contract_max_kw:g}",
                f"{s.min_active_kw:g}",
                s.charging_rate_unit,
                s.phases,
                f"{s.voltage_v:g}",
                s.password,
            ]
        )
    return buf.getvalue()


def write_csv(stations: Iterable[StationSpec], path: str | Path) -> None:
    Path(path).write_text(to_csv(stations), encoding="utf-8")


def read_csv(
    path: str | Path,
    *,
    seed: int = 0,
    ratio_201: float = 0.5,
    reject_max_profile_fraction: float = 0.0,
) -> list[StationSpec]:
    """Stations from a CSV with :data:`COLUMNS`; versions assigned by ``ratio_201``.

    A missing or empty password column falls back to :func:`derive_password`.
    """
    text = Path(path).read_text(encoding="utf-8-sig")
    reader = csv.DictReader(io.StringIO(text))
    missing = {"station_id", "zone_id"} - set(reader.fieldnames or ())
    if missing:
        raise ConfigError(f"{path}: missing columns {sorted(missing)}")
    rng = random.Random(f"stations-csv:{seed}")
    out = []
    for i, row in enumerate(reader):
        try:
            sid = row["station_id"].strip()
            phases = int(row.get("phases") or 3)
            voltage = float(row.get("voltage_v") or 230.0)
            kw = float(row.get("max_station_kw") or 11.0)
            spec = StationSpec(
                station_id=sid,
                zone_id=row["zone_id"].strip(),
                max_station_kw=kw,
                contract_max_kw=float(row.get("contract_max_kw") or kw),
                min_active_kw=float(row.get("min_active_kw") or _floor_kw(phases, voltage)),
                charging_rate_unit=(row.get("charging_rate_unit") or "W").strip(),
                phases=phases,
                voltage_v=voltage,
                password=(row.get("password") or "").strip() or derive_password(seed, sid),
                ocpp_version="2.0.1" if is_201(i, ratio_201) else "1.6",
                reject_max_profile=rng.random() < reject_max_profile_fraction,
            )
        except (ValueError, KeyError, AttributeError) as exc:
            raise ConfigError(f"{path}: row {i + 2}: {exc}") from exc
        out.append(spec)
    if not out:
        raise ConfigError(f"{path}: no stations")
    return out


def apply_passwords(stations: list[StationSpec], path: str | Path) -> list[StationSpec]:
    """Passwords from a file: one line (shared by all) or ``station_id,password`` lines."""
    lines = [ln.strip() for ln in Path(path).read_text(encoding="utf-8").splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    if not lines:
        raise ConfigError(f"{path}: empty password file")
    if len(lines) == 1 and "," not in lines[0]:
        return [replace(s, password=lines[0]) for s in stations]
    table = {}
    for ln in lines:
        sid, sep, pw = ln.partition(",")
        if not sep:
            raise ConfigError(f"{path}: expected station_id,password, got {ln!r}")
        table[sid.strip()] = pw.strip()
    return [replace(s, password=table.get(s.station_id, s.password)) for s in stations]


def api_rows(stations: Iterable[StationSpec], password_hash: str) -> list[dict[str, object]]:
    """``POST /v1/stations`` bodies for simulated stations sharing one password hash.

    One hash for the whole fleet: scrypt costs ~50 ms per password by design, which is
    right for real stations and pointless for thousands of simulated ones.
    """
    return [
        {
            **{name: getattr(spec, name) for name in StationZone.__struct_fields__},
            "password_hash": password_hash,
        }
        for spec in stations
    ]
