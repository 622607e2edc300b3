"""Replay: golden output, determinism byte for byte, and bad input lines named."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from pathlib import Path

import pytest

from pipeline.engine import ReplayError
from pipeline.replay import read_input, replay

pytestmark = pytest.mark.timeout(300)

GOLDEN = Path(__file__).parent / "golden"


@pytest.mark.timeout(900)  # two replays of 15 virtual minutes on a shared machine
async def test_replay_matches_golden_output_and_is_deterministic(
    postgres: str, tmp_path: Path
) -> None:
    records = read_input((GOLDEN / "scenario_basic.jsonl").read_text().splitlines())
    first = io.StringIO()
    # A tick every 5 s of virtual time: every decision of the scenario falls on one.
    stats = await replay(records, first, tick=timedelta(seconds=5), dsn=postgres)
    assert stats.records == 566
    # The expected file was checked by hand (control law v2, docs/control-law.md; stations
    # three-phase: minimum 6 A x 3 x 230 V -> 4.2 kW). Z1 CURTAIL 30 % of its pre-start
    # 20 kW (cap 14) from 12:02:00, at once: floors 4.2 + 4.2, the 5.6 kW left by frozen
    # demand 12 : 8 -> S1 7.5, S2 6.4. S2 times out on every command: uncontrollable from
    # 12:02:10 (alert), its 8 kW reserved, commanded min(8, 7 contract) = 7; S1 gets
    # 14 - 8 - 4.2 + its 4.2 floor = 6.0 (the alert one tick later, when its episode
    # comes back frozen through pipeline.dr_alert_episodes). Modified to 50 % at 12:05
    # (cap 10): 4.2 + 8 > 10, infeasible by 2.2 kW (alert 30 s later), S1 held at 4.2.
    # Z2 SHED to 5 kW
    # at 12:02:30: S4 (demand 8) admitted at 4.2 + the 0.8 left = 5.0, S3 (6) pauses (0);
    # tombstones at its 12:07:30 end. RESTORE at 12:10: tombstones. S2 over its 7 kW
    # contract once per minute; Z1 over cap from 12:07 (300 s grace); ack rate 0.5; the
    # pipeline's own baseline and signal-state records. Within a tick the commands come
    # first: the engine publishes the command sink before the other sinks.
    assert first.getvalue() == (GOLDEN / "scenario_basic.expected.jsonl").read_text()
    # The same input again, on a throw-away embedded PostgreSQL: the same bytes.
    second = io.StringIO()
    await replay(records, second, tick=timedelta(seconds=5))
    assert second.getvalue() == first.getvalue()


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ("not json", "$"),
        ('{"topic": "ocpp.meter_values", "key": "S1", "value": {}}', "ts"),
        ('{"topic": 3, "key": "S1", "value": null, "ts": "2026-01-05T12:00:00Z"}', "topic"),
        ('{"topic": "x", "key": "S1", "value": null, "ts": "2026-01-05T12:00:00"}', "ts"),
        (
            '{"topic": "ocpp.meter_values", "key": "S1", "ts": "2026-01-05T12:00:00Z", '
            '"value": {"station_id": "S1", "connector_id": 1, "event_ts": "2026-01-05T12:00:00Z",'
            ' "ocpp_version": "1.6"}}',
            "value.received_ts",
        ),
    ],
)
def test_bad_input_line_names_line_and_field(line: str, field: str) -> None:
    good = '{"topic": "x", "key": null, "value": null, "ts": "2026-01-05T12:00:00Z"}'
    with pytest.raises(ReplayError) as err:
        read_input([good, "", line])
    assert err.value.line == 3
    assert err.value.field == field
    assert str(err.value).startswith(f"line 3: {field}: ")


def test_cli_replay_until_writes_the_prefix_of_the_full_run(postgres: str, tmp_path: Path) -> None:
    import typer
    from typer.testing import CliRunner

    from cli.durations import parse_duration
    from cli.replay_cmd import register

    assert parse_duration("500ms") == 0.5
    assert parse_duration("2m") == 120.0
    assert parse_duration("1h30m") == 5400.0
    app = typer.Typer()
    register(app)
    app.command("noop")(lambda: None)  # a second command keeps `replay` a subcommand
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(
        app,
        [
            "replay",
            str(GOLDEN / "scenario_basic.jsonl"),
            "--out",
            str(out),
            "--until",
            "2026-01-05T12:05:00Z",
            "--tick",  # the expected file's ticks (alert episodes come back one tick later)
            "5s",
            "--database-url",
            postgres,
        ],
    )
    assert result.exit_code == 0, result.output
    expected = [
        line
        for line in (GOLDEN / "scenario_basic.expected.jsonl").read_text().splitlines()
        if json.loads(line)["ts"] <= "2026-01-05T12:05:00Z"
    ]
    assert out.read_text().splitlines() == expected
    assert len(expected) == 24  # commands, alerts and the pipeline's own records


def test_cli_replay_bad_line_exits_1_naming_line_and_field(tmp_path: Path) -> None:
    import typer
    from typer.testing import CliRunner

    from cli.replay_cmd import register

    app = typer.Typer()
    register(app)
    app.command("noop")(lambda: None)
    bad = tmp_path / "in.jsonl"
    bad.write_text('{"topic": "x", "key": null, "value": [], "ts": "2026-01-05T12:00:00Z"}\n')
    result = CliRunner().invoke(app, ["replay", str(bad), "--out", str(tmp_path / "o.jsonl")])
    assert result.exit_code == 1
    assert "line 1: value: expected an object or null" in result.output


def test_golden_output_follows_the_topic_contracts() -> None:
    from pipeline import contracts

    lines = (GOLDEN / "scenario_basic.expected.jsonl").read_text().splitlines()
    topics_seen = set()
    for line in lines:
        record = json.loads(line)
        topics_seen.add(record["topic"])
        if record["value"] is not None:
            # What the gateway and the NOC read: every field the contract declares.
            decoded = contracts.decode_topic(record["topic"], json.dumps(record["value"]))
            assert decoded is not None
    assert topics_seen == {
        "ocpp.commands.set_charging_profile",
        "alerts.grid.overload",
        "alerts.grid.dr",
        "pipeline.dr_baselines",
        "pipeline.dr_alert_episodes",
        "pipeline.dr_signal_states",
    }
