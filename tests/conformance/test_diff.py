"""The conformance diff, on two real embedded runs of the golden scenario: runs that
mean the same agree (also in RisingWave's encodings); each kind of disagreement is named."""

from __future__ import annotations

import asyncio
import copy
import io
import json
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pipeline.conformance import diff, outcome, read_jsonl
from pipeline.replay import read_input, replay
from tests.conformance.scenarios import SCENARIOS

pytestmark = pytest.mark.timeout(300)


async def _embedded(dsn: str) -> list[dict[str, Any]]:
    records = read_input(SCENARIOS[0].read_text().splitlines())
    out = io.StringIO()
    # A tick every 5 s of virtual time: every decision of the scenario falls on one.
    await replay(records, out, tick=timedelta(seconds=5), dsn=dsn)
    return read_jsonl(out.getvalue().splitlines())


def _as_risingwave_writes(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same records as RisingWave would write them: every number a NUMERIC string,
    timestamps with fractions, alert keys as a JSON object of other spelling; and each
    command sent twice (a barrier later, at least once)."""
    out = []
    for r in records:
        r = copy.deepcopy(r)
        if isinstance(r["value"], dict):
            for k, v in r["value"].items():
                if isinstance(v, float | int) and not isinstance(v, bool):
                    r["value"][k] = str(v)
                elif isinstance(v, str) and v.endswith("Z") and "T" in v:
                    r["value"][k] = v.replace("Z", ".000000+00:00")
        if r["topic"].startswith("alerts."):
            r["key"] = json.dumps({"k": r["key"]})
        out.append(r)
        if r["topic"].endswith("set_charging_profile"):
            out.append(r)
    return out


def _database(server: str, name: str) -> str:
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    params = conninfo_to_dict(server)
    params["dbname"] = name
    return make_conninfo(**params)


@pytest.fixture(scope="module")
def runs(postgres_server: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Two embedded replays of the golden scenario, each on its own new database."""

    async def both() -> list[list[dict[str, Any]]]:
        return [await _embedded(_database(postgres_server, f"conformance_{n}")) for n in (1, 2)]

    first, second = asyncio.run(both())
    return first, second


def test_two_embedded_runs_agree_also_in_risingwave_encodings(runs: tuple) -> None:
    first, second = runs
    assert first, "the scenario sends commands and alerts"
    assert diff(outcome(first), outcome(second)) == []
    assert diff(outcome(first), outcome(_as_risingwave_writes(second))) == []


def test_each_disagreement_is_named(runs: tuple) -> None:
    first, second = copy.deepcopy(runs[0]), copy.deepcopy(runs[1])
    commands = [r for r in second if r["topic"].endswith("set_charging_profile")]
    alerts = [r for r in second if r["topic"].startswith("alerts.")]
    tombstone = next(r for r in commands if r["value"] is None)
    second.remove(tombstone)  # a station left limited (its last record is a limit now)
    # a station both runs leave limited, at limits 0.5 kW apart
    extra = copy.deepcopy(next(r for r in commands if r["value"] is not None))
    extra["key"] = extra["value"]["station_id"] = "SX"
    first.append(copy.deepcopy(extra))
    extra["value"]["target_power_kw"] += 0.5
    second.append(extra)
    second.append(alerts[0])  # an alert sent twice
    second.remove(alerts[-1])  # and one never sent
    problems = diff(outcome(first), outcome(second))
    station = tombstone["key"]
    assert f"command {station}: a tombstone only in the expected run" in problems
    assert f"command {station}: expected cleared, got a limit" in problems
    assert [p for p in problems if p.startswith("command SX:")] == [
        "command SX: target_power_kw: "
        f"{first[-1]['value']['target_power_kw']:.1f} vs {extra['value']['target_power_kw']:.1f}"
    ]
    assert sum(p.endswith("emitted 2 times") for p in problems) == 1
    assert sum(p.endswith(": missing") for p in problems) == 1
    assert len(problems) == 5
