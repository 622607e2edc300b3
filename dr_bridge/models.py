"""Request models of the HTTP API and their checks, without I/O.

pydantic stops at nothing: every field is validated on its own, then the cross-field rules
(one amount, a window that ends after it starts, a known zone) run on whatever parsed, so a
422 names *each* bad field at once. The result is turned into the bus contract,
:class:`pipeline.contracts.DemandResponseSignal`.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
)

from dr_bridge.errors import SignalInvalid
from pipeline.contracts import STATION_ID_MAX, DemandResponseSignal

AMOUNTS = ("target_reduction_kw", "target_reduction_pct", "zone_limit_kw")
_NUM = r"\d+(?:\.\d+)?"
_DURATION = re.compile(rf"^(?:(?P<h>{_NUM})h)?(?:(?P<m>{_NUM})m)?(?:(?P<s>{_NUM})s)?$")
_ISO_DURATION = re.compile(rf"^PT(?:(?P<h>{_NUM})H)?(?:(?P<m>{_NUM})M)?(?:(?P<s>{_NUM})S)?$")
SAFE_ID = r"^[A-Za-z0-9][A-Za-z0-9._:@-]*$"
#: Highest ``modification`` a client may give: exact as a JSON number everywhere (2**53),
#: and far enough below the int64 columns' limit that bumping it (a cancel is +1) cannot
#: overflow.
MAX_MODIFICATION = 2**53 - 1
#: Longest signal: a DR event lasts hours; a month is a mistake or an attack.
MAX_DURATION = timedelta(days=31)
#: Latest start: beyond that no utility schedules, and dates near year 9999 overflow.
MAX_LEAD = timedelta(days=365)
#: a station id the gateway can serve (pipeline.contracts.STATION_ID_PATTERN, narrowed to
#: SAFE_ID's characters): no ':' or '/', no control characters, at most 48 characters
STATION_ID = r"^[A-Za-z0-9][A-Za-z0-9._@-]*$"


def parse_duration(value: Any) -> timedelta:
    """``"15m"``, ``"1h30m"``, ``"90s"``, ISO ``"PT15M"`` or a number of seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("duration must be like 15m, 1h30m, 90s, PT15M or seconds")
    if isinstance(value, int | float):
        return _bounded(float(value))
    if isinstance(value, str):
        text = value.strip()
        match = _DURATION.match(text) or _ISO_DURATION.match(text.upper())
        if text and match and any(match.groupdict().values()):
            parts = {k: float(v) for k, v in match.groupdict().items() if v}
            return _bounded(parts.get("h", 0) * 3600 + parts.get("m", 0) * 60 + parts.get("s", 0))
        if text.replace(".", "", 1).isdigit():
            return _bounded(float(text))
    raise ValueError("duration must be like 15m, 1h30m, 90s, PT15M or seconds")


def _bounded(seconds: float) -> timedelta:
    """A duration of ``seconds``, refused before timedelta could overflow."""
    if not math.isfinite(seconds):
        raise ValueError("duration must be a finite number")
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"duration must be at most {MAX_DURATION.days} days")
    return timedelta(seconds=seconds)


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


class SignalRequest(BaseModel):
    """Body of ``POST /v1/signals``: one DR signal for one zone."""

    model_config = ConfigDict(extra="forbid")

    signal_id: str | None = Field(
        None, min_length=1, max_length=128, pattern=SAFE_ID, description="generated when absent"
    )
    modification: int | None = Field(
        None,
        ge=0,
        le=MAX_MODIFICATION,
        description="absent: the next one if the content changed",
    )
    zone_id: str = Field(min_length=1, max_length=128)
    signal_type: Literal["CURTAIL", "SHED"] = "CURTAIL"
    target_reduction_kw: float | None = Field(None, ge=0, allow_inf_nan=False)
    target_reduction_pct: float | None = Field(None, ge=0, le=100, allow_inf_nan=False)
    zone_limit_kw: float | None = Field(None, ge=0, allow_inf_nan=False)
    start_ts: AwareDatetime | None = Field(None, description="default: now")
    end_ts: AwareDatetime | None = None
    duration: Duration | None = Field(None, description="instead of end_ts: 15m, 1h30m, PT15M")
    priority: int = Field(2, ge=1, le=3, description="1 emergency, 2 economic, 3 optional")

    def content_hash(self) -> str:
        """Hash of what the client asked for, without the modification number.

        Two POSTs of the same signal compare equal even when ``start_ts`` defaulted to
        "now" at different times, because the hash is taken over the request as sent.
        """
        data = self.model_dump(mode="json", exclude={"modification", "signal_id"})
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:32]

    def window(self, now: datetime) -> tuple[datetime, datetime]:
        start = self.start_ts or now
        end = self.end_ts if self.end_ts is not None else start + (self.duration or timedelta())
        return start, end

    def to_signal(
        self, signal_id: str, modification: int, now: datetime, source: str = "api"
    ) -> DemandResponseSignal:
        start, end = self.window(now)
        return DemandResponseSignal(
            signal_id=signal_id,
            modification=modification,
            zone_id=self.zone_id,
            signal_type=self.signal_type,
            target_reduction_kw=self.target_reduction_kw,
            target_reduction_pct=self.target_reduction_pct,
            zone_limit_kw=self.zone_limit_kw,
            start_ts=start,
            end_ts=end,
            priority=self.priority,
            source=source,
            received_ts=now,
        )


_FIELD_ADAPTERS: dict[str, TypeAdapter[Any]] = {
    name: TypeAdapter(Annotated[info.annotation, info])  # type: ignore[name-defined,arg-type]
    for name, info in SignalRequest.model_fields.items()
}


def _errors(exc: ValidationError, prefix: str) -> list[tuple[str, str]]:
    out = []
    for err in exc.errors():
        tail = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"])
        out.append(((prefix + tail).lstrip("."), err["msg"]))
    return out


def parse_signal_request(raw: Any, is_zone: Callable[[str], bool], now: datetime) -> SignalRequest:
    """Validate a request body, or raise :class:`SignalInvalid` naming every bad field."""
    if not isinstance(raw, dict):
        raise SignalInvalid([("body", "expected a JSON object")])
    errors: list[tuple[str, str]] = []
    good: dict[str, Any] = {}
    for name in raw:
        if name not in _FIELD_ADAPTERS:
            errors.append((name, "unknown field"))
    for name, adapter in _FIELD_ADAPTERS.items():
        if name not in raw:
            if SignalRequest.model_fields[name].is_required():
                errors.append((name, "required field is missing"))
            continue
        try:
            good[name] = adapter.validate_python(raw[name])
        except ValidationError as exc:
            errors.extend((name, e["msg"]) for e in exc.errors())
    bad = {field for field, _ in errors}

    given = [a for a in AMOUNTS if raw.get(a) is not None]
    if len(given) > 1:
        errors.extend((a, f"give exactly one of {', '.join(AMOUNTS)}") for a in given)
    elif not given and not bad & set(AMOUNTS):
        errors.append(("target_reduction_kw", f"one of {', '.join(AMOUNTS)} is required"))

    has_end, has_duration = raw.get("end_ts") is not None, raw.get("duration") is not None
    if has_end and has_duration:
        errors.append(("duration", "give end_ts or duration, not both"))
    elif not has_end and not has_duration:
        errors.append(("end_ts", "end_ts or duration is required"))
    elif not bad & {"start_ts", "end_ts", "duration"}:
        errors.extend(_window_errors(good, now))

    zone = good.get("zone_id")
    if zone is not None and not is_zone(zone):
        errors.append(("zone_id", f"unknown zone {zone!r}"))
    if errors:
        raise SignalInvalid(_dedupe(errors))
    return SignalRequest.model_validate(good)


def _window_errors(good: dict[str, Any], now: datetime) -> list[tuple[str, str]]:
    """What is wrong with a signal's window: it must end after it starts, in the future,
    within :data:`MAX_DURATION`, and start within :data:`MAX_LEAD` from now."""
    start = good.get("start_ts") or now
    if "end_ts" in good:
        end, field = good["end_ts"], "end_ts"
        if end <= start:
            return [("end_ts", "must be after start_ts")]
    elif good["duration"] <= timedelta():
        return [("duration", "must be positive")]
    if start > now + MAX_LEAD:
        return [("start_ts", f"must be at most {MAX_LEAD.days} days ahead")]
    if "end_ts" in good:
        if end - start > MAX_DURATION:
            return [("end_ts", f"signal must last at most {MAX_DURATION.days} days")]
    else:
        end, field = start + good["duration"], "duration"
    if end <= now:
        return [(field, "the signal would already have ended")]
    return []


def _dedupe(errors: list[tuple[str, str]]) -> list[tuple[str, str]]:
    seen: set[tuple[str, str]] = set()
    return [e for e in errors if not (e in seen or seen.add(e))]  # type: ignore[func-returns-value]


# -- stations -------------------------------------------------------------------------
class StationIn(BaseModel):
    """One station of ``POST /v1/stations``; the password arrives already hashed."""

    model_config = ConfigDict(extra="forbid")

    station_id: str = Field(
        min_length=1,
        max_length=STATION_ID_MAX,
        pattern=STATION_ID,
        description="the charger's OCPP identity, the last segment of its URL: at most 48 "
        "characters, no ':' (it ends the Basic-auth username) or '/'",
    )
    zone_id: str = Field(min_length=1, max_length=128, pattern=SAFE_ID)
    max_station_kw: float = Field(gt=0)
    contract_max_kw: float = Field(gt=0)
    min_active_kw: float = Field(0.0, ge=0)
    charging_rate_unit: Literal["W", "A"] = "W"
    phases: Literal[1, 3] = 3
    voltage_v: float = Field(230.0, gt=0)
    password_hash: str = Field(
        pattern=r"^scrypt\$[0-9a-f]{32}\$[0-9a-f]{64}$",
        description="scrypt$<salt hex>$<hash hex> (n=2**14, r=8, p=1); never a password",
    )


_STATIONS = TypeAdapter(list[StationIn])


def parse_stations(raw: Any) -> list[StationIn]:
    """Validate a whole list of stations, or raise :class:`SignalInvalid` for all of it.

    Field names are ``[index].field`` (0-based), so the CLI can map them back to lines.
    """
    try:
        stations = _STATIONS.validate_python(raw)
    except ValidationError as exc:
        raise SignalInvalid(_errors(exc, "")) from exc
    errors: list[tuple[str, str]] = []
    seen: dict[str, int] = {}
    for i, s in enumerate(stations):
        if s.station_id in seen:
            errors.append((f"[{i}].station_id", f"duplicate of [{seen[s.station_id]}]"))
        seen.setdefault(s.station_id, i)
        if s.min_active_kw > min(s.max_station_kw, s.contract_max_kw):
            errors.append((f"[{i}].min_active_kw", "above max_station_kw or contract_max_kw"))
    if errors:
        raise SignalInvalid(errors)
    return stations
