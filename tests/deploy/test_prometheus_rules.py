"""deploy/prometheus/alerts.yml: parses, names only metrics gridctl exports, says what to do.

PromQL syntax is checked with the ``promql-parser`` package (Python bindings of the Rust
promql-parser crate), and the five alerts of issue 6 item 7 are found by the metric and the
threshold their expression compares against. Where ``promtool`` is installed (Debian
package ``prometheus``), it also checks the rules and the config, evaluates every
expression on synthetic series that must and must not fire it, and runs two alerts end to
end (``for``, labels, rendered annotations); without it those tests skip.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml

from pipeline import metrics_names

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
OPERATIONS = ROOT / "docs" / "operations.md"

#: Series Prometheus itself provides, and RisingWave's (job risingwave) that we rely on.
BUILTIN = {"up", "ALERTS", "ALERTS_FOR_STATE"}
RISINGWAVE = {"meta_barrier_duration_seconds"}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def exported_names() -> set[str]:
    """Every metric name pipeline/metrics_names.py spells (its string constants)."""
    return {
        value
        for name, value in vars(metrics_names).items()
        if name.isupper() and isinstance(value, str) and value.startswith("gridctl_")
    }


def known_metric(name: str) -> bool:
    """A name gridctl exports (or RisingWave), a histogram series of one, or a built-in."""
    names = exported_names() | RISINGWAVE
    if name in names or name in BUILTIN:
        return True
    return any(name.endswith(s) and name.removesuffix(s) in names for s in HISTOGRAM_SUFFIXES)


def metric_names(expr: str) -> list[str]:
    """Metric names an expression selects; raises ValueError when it does not parse."""
    found: list[str] = []

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            found.append(node.name)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


def _comparison(expr: str) -> tuple[str, float]:
    """The top-level comparison of an alert expression: operator and number compared to.

    ``a > 1 and on () b == 0`` gives the left side's comparison, the alert's condition.
    """
    node = promql_parser.parse(expr)
    while isinstance(node, promql_parser.BinaryExpr) and str(node.op) in ("and", "or"):
        node = node.lhs
    assert isinstance(node, promql_parser.BinaryExpr), expr
    assert isinstance(node.rhs, promql_parser.NumberLiteral), expr
    return str(node.op), node.rhs.val


@pytest.fixture(scope="module")
def rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def _alert_using(rules: list[dict[str, Any]], metric: str) -> dict[str, Any]:
    matching = [r for r in rules if metric in metric_names(r["expr"])]
    assert matching, f"no alert reads {metric}"
    return matching[0]


def test_rules_file_shape(rules: list[dict[str, Any]]) -> None:
    doc = yaml.safe_load(RULES.read_text())
    assert all(set(g) >= {"name", "rules"} for g in doc["groups"])
    names = [r["alert"] for r in rules]
    assert len(names) == len(set(names))
    for rule in rules:
        assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]


def test_expressions_parse_and_read_only_exported_metrics(rules: list[dict[str, Any]]) -> None:
    for rule in rules:
        names = metric_names(rule["expr"])
        assert names, rule["alert"]
        unknown = [n for n in names if not known_metric(n)]
        assert not unknown, f"{rule['alert']} reads {unknown}, not in pipeline/metrics_names.py"


def test_a_broken_expression_is_caught() -> None:
    with pytest.raises(ValueError):
        metric_names("sum(rate(gridctl_readings_ingested_total[5m])")


def test_every_alert_says_what_it_means_and_where_the_runbook_is(
    rules: list[dict[str, Any]],
) -> None:
    headings = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in OPERATIONS.read_text().splitlines()
        if line.startswith("#")
    }
    for rule in rules:
        notes = rule["annotations"]
        assert len(notes["summary"]) > 20, rule["alert"]
        assert len(notes["description"]) > 120, rule["alert"]
        for text in notes.values():
            assert text.count("{{") == text.count("}}"), rule["alert"]
        path, _, anchor = notes["runbook"].partition("#")
        assert path == "docs/operations.md" and anchor in headings, notes["runbook"]


def test_meter_data_age_over_15_minutes(rules: list[dict[str, Any]]) -> None:
    # _sum / _count: a quantile would be capped by the highest finite bucket of the
    # histogram (600 s in pipeline/engine/metrics.py), so "> 900" could never fire.
    rule = _alert_using(rules, metrics_names.METER_DATA_AGE_SECONDS + "_sum")
    assert metrics_names.METER_DATA_AGE_SECONDS + "_count" in metric_names(rule["expr"])
    assert _comparison(rule["expr"]) == (">", 900.0)
    assert rule["labels"]["severity"] == "critical"


def test_meter_data_missing_while_stations_connected(rules: list[dict[str, Any]]) -> None:
    rule = _alert_using(rules, metrics_names.OCPP_CONNECTED_STATIONS)
    assert metrics_names.READINGS_INGESTED in metric_names(rule["expr"])


def test_readings_dropped_over_a_tenth_of_a_percent(rules: list[dict[str, Any]]) -> None:
    rule = _alert_using(rules, metrics_names.READINGS_REFUSED)
    names = metric_names(rule["expr"])
    assert metrics_names.READINGS_INGESTED in names
    assert metrics_names.ENGINE_RECORDS_REJECTED in names
    assert _comparison(rule["expr"]) == (">", 0.001)


def test_command_ack_rate_under_90_percent(rules: list[dict[str, Any]]) -> None:
    rule = _alert_using(rules, metrics_names.COMMAND_ACK_RATE)
    assert _comparison(rule["expr"]) == ("<", 0.9)
    assert "signal_id" in rule["expr"] and "signal_id" in rule["annotations"]["summary"]


def test_fleet_accept_rate_under_90_percent(rules: list[dict[str, Any]]) -> None:
    rule = _alert_using(rules, metrics_names.COMMAND_RESULTS)
    assert 'status="Accepted"' in rule["expr"]
    assert _comparison(rule["expr"]) == ("<", 0.9)


def test_ingest_p99_over_5_seconds(rules: list[dict[str, Any]]) -> None:
    rule = _alert_using(rules, metrics_names.INGEST_LATENCY_SECONDS + "_bucket")
    assert "histogram_quantile(0.99" in rule["expr"].replace(" ", "").replace("\n", "")
    assert _comparison(rule["expr"]) == (">", 5.0)


def test_engine_lag_behind_the_bus(rules: list[dict[str, Any]]) -> None:
    rule = _alert_using(rules, metrics_names.ENGINE_LAG_RECORDS)
    op, threshold = _comparison(rule["expr"])
    assert op == ">" and threshold > 0


def test_a_stalled_engine_is_alerted_by_tick_age(rules: list[dict[str, Any]]) -> None:
    rule = _alert_using(rules, metrics_names.ENGINE_LAST_TICK)
    assert "time()" in rule["expr"]
    assert _comparison(rule["expr"]) == (">", 60.0)
    assert rule["labels"]["severity"] == "critical"


def test_gridctl_down_is_alerted(rules: list[dict[str, Any]]) -> None:
    rule = _alert_using(rules, "up")
    assert 'job=~"gridctl|gridctl-ocpp"' in rule["expr"]
    assert _comparison(rule["expr"]) == ("==", 0.0)


def test_risingwave_pipeline_lag_is_alerted(rules: list[dict[str, Any]]) -> None:
    rule = _alert_using(rules, "meta_barrier_duration_seconds_bucket")
    assert _comparison(rule["expr"]) == (">", 10.0)


# --- promtool: syntax of rules and config, and the expressions on synthetic series -------

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (Debian: apt-get install prometheus)"
)


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL
    return subprocess.run(
        [PROMTOOL, *args], capture_output=True, text=True, timeout=60, check=False
    )


@needs_promtool
def test_promtool_accepts_the_rules() -> None:
    result = _promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_accepts_the_config(tmp_path: Path) -> None:
    """prometheus.yml with its container paths pointed at this checkout."""
    token = tmp_path / "token"
    token.write_text("metrics-token\n")
    text = (RULES.parent / "prometheus.yml").read_text()
    text = text.replace("/etc/prometheus/alerts.yml", str(RULES))
    text = text.replace("/run/secrets/gridctl_metrics_token", str(token))
    config = tmp_path / "prometheus.yml"
    config.write_text(text)
    result = _promtool("check", "config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr


def _ramp(step: float, points: int = 31) -> str:
    """A counter growing by ``step`` per minute (promtool series notation)."""
    return f"0+{step}x{points - 1}"


def _flat(value: float, points: int = 31) -> str:
    return f"{value}x{points - 1}"


def _histogram(name: str, bounds: list[str], filled_from: str, rate: float = 10) -> list[dict]:
    """A histogram whose observations all fall in the bucket ``le=filled_from``."""
    start = bounds.index(filled_from)
    return [
        {"series": f'{name}_bucket{{le="{le}"}}', "values": _ramp(rate if i >= start else 0)}
        for i, le in enumerate(bounds)
    ]


AGE = "gridctl_meter_data_age_seconds"
LATENCY = "gridctl_ingest_latency_seconds"
LATENCY_BOUNDS = ["1", "5", "10", "+Inf"]
BARRIER = "meta_barrier_duration_seconds"
BARRIER_BOUNDS = ["1", "10", "30", "+Inf"]
ALTERNATING_LAG = " ".join("5000" if i % 2 else "0" for i in range(31))

#: alert -> (series on which it must fire, series on which it must stay quiet)
SCENARIOS: dict[str, tuple[list[dict], list[dict]]] = {
    "GridctlMeterDataStale": (
        [  # 10 readings a minute, 20 minutes old on average
            {"series": f"{AGE}_count", "values": _ramp(10)},
            {"series": f"{AGE}_sum", "values": _ramp(12000)},
        ],
        [  # 30 seconds old on average
            {"series": f"{AGE}_count", "values": _ramp(10)},
            {"series": f"{AGE}_sum", "values": _ramp(300)},
        ],
    ),
    "GridctlMeterDataMissing": (
        [
            {"series": "gridctl_ocpp_connected_stations", "values": _flat(5)},
            {"series": "gridctl_readings_ingested_total", "values": _flat(100)},
        ],
        [
            {"series": "gridctl_ocpp_connected_stations", "values": _flat(5)},
            {"series": "gridctl_readings_ingested_total", "values": _ramp(60)},
        ],
    ),
    "GridctlReadingsDropped": (
        [  # 0.2 % dropped by the engine; the gateway exports no refused series at all
            {"series": "gridctl_readings_ingested_total", "values": _ramp(1000)},
            {
                "series": 'gridctl_engine_records_rejected_total{topic="ocpp.meter_values"}',
                "values": _ramp(2),
            },
        ],
        [
            {"series": "gridctl_readings_ingested_total", "values": _ramp(10000)},
            {"series": 'gridctl_readings_refused_total{reason="contract"}', "values": _ramp(5)},
        ],
    ),
    "GridctlCommandAckRateLow": (
        [
            {"series": 'gridctl_command_ack_rate{signal_id="s1"}', "values": _flat(0.5)},
            {"series": 'gridctl_command_ack_rate{signal_id="s2"}', "values": _flat(1)},
        ],
        [{"series": 'gridctl_command_ack_rate{signal_id="s1"}', "values": _flat(0.95)}],
    ),
    "GridctlCommandAcceptRateLow": (
        [
            {"series": 'gridctl_command_results_total{status="Accepted"}', "values": _ramp(5)},
            {"series": 'gridctl_command_results_total{status="Timeout"}', "values": _ramp(5)},
        ],
        [
            {"series": 'gridctl_command_results_total{status="Accepted"}', "values": _ramp(19)},
            {"series": 'gridctl_command_results_total{status="Rejected"}', "values": _ramp(1)},
        ],
    ),
    "GridctlIngestLatencyHigh": (
        _histogram(LATENCY, LATENCY_BOUNDS, "10"),  # 5-10 s
        _histogram(LATENCY, LATENCY_BOUNDS, "1"),
    ),
    "GridctlEngineLagging": (
        [{"series": "gridctl_engine_lag_records", "values": _flat(5000)}],
        [{"series": "gridctl_engine_lag_records", "values": ALTERNATING_LAG}],  # catches up
    ),
    "GridctlRisingWaveBarrierSlow": (
        _histogram(BARRIER, BARRIER_BOUNDS, "30"),
        _histogram(BARRIER, BARRIER_BOUNDS, "1"),
    ),
    "GridctlEngineStalled": (
        [  # ticked until minute 20 (Unix time 1200 s), then stopped: 300 s old at minute 25
            {
                "series": 'gridctl_engine_last_tick_timestamp_seconds{instance="g:8080"}',
                "values": f"0+60x20 {_flat(1200, 11)}",
            }
        ],
        [  # ticking: the stamp follows the clock (promtool's time starts at 0)
            {
                "series": 'gridctl_engine_last_tick_timestamp_seconds{instance="g:8080"}',
                "values": _ramp(60),
            }
        ],
    ),
    "GridctlDown": (
        [{"series": 'up{job="gridctl", instance="gridctl:8080"}', "values": _flat(0)}],
        [{"series": 'up{job="gridctl", instance="gridctl:8080"}', "values": _flat(1)}],
    ),
}


def test_every_alert_has_a_scenario(rules: list[dict[str, Any]]) -> None:
    assert {r["alert"] for r in rules} == set(SCENARIOS)


@needs_promtool
def test_alert_expressions_fire_on_bad_series_and_not_on_good(
    rules: list[dict[str, Any]], tmp_path: Path
) -> None:
    """Each expression, evaluated by promtool on synthetic series at minute 25.

    ``count(expr)`` is 1 when the alert's condition holds and empty when it does not,
    whatever labels and value the expression itself returns.
    """
    tests = []
    for rule in rules:
        bad, good = SCENARIOS[rule["alert"]]
        expr = f"count({rule['expr'].strip()})"
        for series, expected in ((bad, [{"labels": "{}", "value": 1}]), (good, [])):
            tests.append(
                {
                    "name": f"{rule['alert']} {'fires' if expected else 'quiet'}",
                    "interval": "1m",
                    "input_series": series,
                    "promql_expr_test": [
                        {"expr": expr, "eval_time": "25m", "exp_samples": expected}
                    ],
                }
            )
    spec = tmp_path / "expr_test.yml"
    spec.write_text(yaml.safe_dump({"rule_files": [], "tests": tests}, sort_keys=False))
    result = _promtool("test", "rules", str(spec))
    assert result.returncode == 0, result.stdout + result.stderr


def _render(text: str, labels: dict[str, str], value: str) -> str:
    """Our annotation templates use only $labels.x and $value | humanize*: render those."""
    text = re.sub(r"\{\{\s*\$labels\.(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), text)
    return re.sub(r"\{\{\s*\$value(\s*\|\s*\w+)?\s*\}\}", value, text)


@needs_promtool
def test_alerts_fire_after_their_for_with_rendered_annotations(
    rules: list[dict[str, Any]], tmp_path: Path
) -> None:
    """Two alerts end to end through promtool: pending for `for`, then firing, annotations
    rendered with the series' labels (a template error would show here)."""
    by_name = {r["alert"]: r for r in rules}
    cases = [
        ("GridctlDown", {"job": "gridctl", "instance": "gridctl:8080"}, "0"),
        ("GridctlCommandAckRateLow", {"signal_id": "s1"}, "50%"),
    ]
    tests = []
    for name, labels, value in cases:
        rule = by_name[name]
        annotations = {k: _render(v, labels, value) for k, v in rule["annotations"].items()}
        exp_labels = {**rule["labels"], "alertname": name}
        if name == "GridctlDown":
            exp_labels |= labels
        else:
            exp_labels["signal_id"] = labels["signal_id"]
        tests.append(
            {
                "interval": "1m",
                "input_series": SCENARIOS[name][0],
                "alert_rule_test": [
                    {"alertname": name, "eval_time": "1m", "exp_alerts": []},  # pending
                    {
                        "alertname": name,
                        "eval_time": "25m",
                        "exp_alerts": [{"exp_labels": exp_labels, "exp_annotations": annotations}],
                    },
                ],
            }
        )
    spec = tmp_path / "alert_test.yml"
    spec.write_text(yaml.safe_dump({"rule_files": [str(RULES)], "tests": tests}))
    result = _promtool("test", "rules", str(spec))
    assert result.returncode == 0, result.stdout + result.stderr
