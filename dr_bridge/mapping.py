"""Protocol payloads -> amounts of our contract; shared by both OpenADR VENs. No I/O.

- SIMPLE level L (0-3): a row of the configured table (``config.DEFAULT_SIMPLE_LEVELS``:
  1 -> CURTAIL 20 %, 2 -> CURTAIL 50 %, 3 -> SHED 100 %); level 0 means "normal", no signal.
- a power limit or setpoint in kW: ``zone_limit_kw``; a delta in kW: ``target_reduction_kw``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pipeline.contracts import DemandResponseSignal


@dataclass(frozen=True, slots=True)
class Amount:
    """What one interval asks of a zone, in our terms (exactly one amount set)."""

    signal_type: str
    target_reduction_kw: float | None = None
    target_reduction_pct: float | None = None
    zone_limit_kw: float | None = None


def simple_amount(level: float, table: dict[int, tuple[str, float]]) -> Amount | None:
    """SIMPLE level -> the configured reduction; None for level 0 (or unknown levels)."""
    row = table.get(round(level))
    if row is None or round(level) <= 0:
        return None
    signal_type, pct = row
    return Amount(signal_type, target_reduction_pct=pct)


def limit_amount(kw: float) -> Amount:
    return Amount("CURTAIL", zone_limit_kw=max(0.0, kw))


def reduction_pct_amount(pct: float) -> Amount | None:
    """A reduction in % of the baseline (0..100); None when there is nothing to reduce."""
    pct = round(max(0.0, min(100.0, pct)), 6)
    return Amount("CURTAIL", target_reduction_pct=pct) if pct > 0 else None


def reduction_kw_amount(kw: float) -> Amount | None:
    return Amount("CURTAIL", target_reduction_kw=abs(kw)) if kw else None


def make_signal(
    *,
    signal_id: str,
    modification: int,
    zone_id: str,
    amount: Amount,
    start: datetime,
    end: datetime,
    priority: int,
    source: str,
    now: datetime,
    event_id: str | None = None,
    event_priority: int | None = None,
) -> DemandResponseSignal:
    return DemandResponseSignal(
        signal_id=signal_id,
        modification=modification,
        zone_id=zone_id,
        signal_type=amount.signal_type,  # type: ignore[arg-type]
        target_reduction_kw=amount.target_reduction_kw,
        target_reduction_pct=amount.target_reduction_pct,
        zone_limit_kw=amount.zone_limit_kw,
        start_ts=start,
        end_ts=end,
        priority=priority,
        source=source,
        received_ts=now,
        event_id=event_id,
        event_priority=event_priority,
    )
