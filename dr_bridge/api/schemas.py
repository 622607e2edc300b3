"""Response models, for the OpenAPI document and readers of it.

Responses are written straight from the bus contract (msgspec), so these describe rather
than produce them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel


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
    ]
    #: the pipeline's state record: baseline (and its basis), cap, shortfall_kw
    state_detail: dict[str, object] | None = None
    #: e.g. an infeasible cap, with the shortfall in kW
    warnings: list[str] = []


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


class FieldError(BaseModel):
    loc: list[str]
    field: str
    msg: str


class ErrorBody(BaseModel):
    detail: list[FieldError] | str
