"""Response models, for the OpenAPI document and readers of it.

Responses are written straight from the bus contract (msgspec), so these describe rather
than produce them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class SignalOut(BaseModel):
    """A stored revision of a DR signal, as published on ``grid.demand_response``."""

    signal_id: str
    modification: int
    zone_id: str
    signal_type: Literal["CURTAIL", "SHED", "RESTORE"]
    target_reduction_kw: float | None = None
    target_reduction_pct: float | None = None
    zone_limit_kw: float | None = None
    start_ts: datetime
    end_ts: datetime
    priority: int
    source: str
    received_ts: datetime
    event_id: str | None = None


class SignalStateOut(SignalOut):
    """A signal with what gridctl does with it (POST answer, GET of one signal)."""

    state: Literal[
        "enforced", "waiting_for_load", "infeasible", "no_stations", "scheduled", "pending", "ended"
    ] = Field(
        description="What gridctl does with the signal: enforced (limits sent), "
        "waiting_for_load (no fresh meter data yet), infeasible (floors or uncontrollable "
        "load exceed the cap), no_stations (nothing mapped to the zone), scheduled (starts "
        "later), pending (not yet evaluated by the engine), ended.",
        examples=["enforced"],
    )
    state_detail: dict[str, object] | None = Field(
        default=None,
        description="The pipeline's state record: the baseline and how it was taken "
        "(pre_start, load_now, lent), the cap in kW, and the shortfall in kW when infeasible.",
    )
    warnings: list[str] = Field(
        default=[],
        description="Reasons the signal is not fully enforced, e.g. an infeasible cap with "
        "the shortfall in kW.",
        examples=[["zone Z1: floors 12.6 kW exceed the cap 12.57 kW by 0.03 kW"]],
    )


class UnreadableOut(BaseModel):
    """A stored revision that no longer decodes, listed by id so it is not invisible."""

    signal_id: str = Field(description="the signal whose latest stored revision is unreadable")
    modification: int = Field(description="that revision's modification")
    unreadable: str = Field(description="why it does not decode (the contract error)")


class StationOut(BaseModel):
    """A station as published on ``config.station_zones`` (no secrets)."""

    station_id: str
    zone_id: str
    max_station_kw: float
    contract_max_kw: float
    min_active_kw: float
    charging_rate_unit: Literal["W", "A"]
    phases: int
    voltage_v: float


class StationStateOut(StationOut):
    """A station with what the gateway and the engine know of it now.

    The state fields are present when the API reads the engine's database (``gridctl
    run``); a bridge run on its own lists configured stations only.
    """

    connection: Literal["online", "offline", "never seen"] | None = Field(
        None,
        description="Latest gateway event: any but a disconnect is online.",
        examples=["online"],
    )
    last_seen: datetime | None = Field(
        None, description="Time (gateway clock) of the station's latest OCPP event."
    )
    ocpp_version: Literal["1.6", "2.0.1"] | None = Field(None, examples=["1.6"])
    connectors: str | None = Field(
        None,
        description="Latest status per connector, `id:status` separated by spaces.",
        examples=["1:Charging 2:Available"],
    )
    max_kw: float | None = Field(
        None,
        description="What it may draw: min(max_station_kw, contract_max_kw), kW.",
        examples=[11.0],
    )
    limit_kw: float | None = Field(
        None,
        description="Limit of the active DR signal now, kW; null: not limited.",
        examples=[5.5],
    )
    last_command: str | None = Field(None, examples=["SetChargingProfile"])
    last_result: str | None = Field(
        None,
        description="Accepted, Rejected, NotSupported, Timeout or Offline.",
        examples=["Accepted"],
    )
    last_result_ts: datetime | None = None


class ZoneOut(BaseModel):
    """A zone: configuration from its stations, live figures from the engine (or null)."""

    zone_id: str = Field(examples=["zone-a"])
    stations: int = Field(description="Configured stations in the zone.", examples=[12])
    capacity_kw: float = Field(
        description="Sum over its stations of min(max_station_kw, contract_max_kw), kW.",
        examples=[264.0],
    )
    floor_kw: float = Field(
        description="Sum of the stations' min_active_kw: the least a CURTAIL leaves, kW.",
        examples=[16.6],
    )
    online: int | None = Field(None, description="Stations connected now.", examples=[11])
    offline: int | None = Field(
        None, description="Stations disconnected or never seen.", examples=[1]
    )
    load_kw: float | None = Field(
        None, description="Current load from fresh meter samples, kW.", examples=[118.4]
    )
    utilisation_pct: float | None = Field(
        None, description="load_kw / capacity_kw, percent.", examples=[44.8]
    )
    cap_kw: float | None = Field(
        None,
        description="Cap of the winning active DR signal, kW; null: none.",
        examples=[80.0],
    )
    signal_id: str | None = Field(None, description="The signal that sets cap_kw.")
    compliance: Literal["compliant", "over cap"] | None = None


class FieldError(BaseModel):
    loc: list[str]
    field: str
    msg: str


class ErrorBody(BaseModel):
    detail: list[FieldError] | str
