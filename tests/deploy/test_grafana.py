"""Grafana provisioning and the NOC dashboard: datasources, mounts, panels, SQL, PromQL.

The dashboard's SQL is checked against migrations/: every relation must be a view or table
they create and every column one of its columns (sqlglot), and every query must run on
the migrations compiled to a real PostgreSQL by the embedded engine.
"""

from __future__ import annotations

import importlib.util
import json
import re
from typing import Any

import pytest
import sqlglot
import yaml
from sqlglot import exp
from sqlglot.errors import OptimizeError
from sqlglot.optimizer.qualify import qualify

from tests.deploy.compose_file import DEPLOY, ROOT, volume_mounts


def _datasources() -> dict[str, dict[str, Any]]:
    folder = DEPLOY / "grafana" / "provisioning" / "datasources"
    out: dict[str, dict[str, Any]] = {}
    for path in folder.glob("*.yml"):
        for ds in yaml.safe_load(path.read_text())["datasources"]:
            out[ds["uid"]] = ds
    return out


def test_grafana_datasources_point_at_risingwave_and_prometheus() -> None:
    by_type = {ds["type"]: ds for ds in _datasources().values()}
    pg = by_type["grafana-postgresql-datasource"]
    assert pg["url"] == "risingwave:4566" and pg["user"] == "root"
    assert pg["jsonData"]["database"] == "dev"
    assert by_type["prometheus"]["url"] == "http://prometheus:9090"


def test_grafana_loads_the_noc_dashboard_from_its_mount(services: dict[str, Any]) -> None:
    provider = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "dashboards" / "gridctl.yml").read_text()
    )["providers"][0]
    mounts = volume_mounts(services["grafana"])
    assert mounts["./deploy/grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    home = services["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == provider["options"]["path"] + "/noc.json"


# --- the NOC dashboard -------------------------------------------------------------------


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads((DEPLOY / "grafana" / "dashboards" / "noc.json").read_text())


def _targets(dashboard: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (panel["title"], target)
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]


def test_dashboard_panels_use_provisioned_datasources(dashboard: dict[str, Any]) -> None:
    uids = set(_datasources())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert dashboard["uid"] and dashboard["title"]
    for panel in dashboard["panels"]:
        assert panel["type"] in {"row", "table", "bargauge", "timeseries", "stat"}, panel
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24 and pos["h"] > 0, panel["title"]
        assert panel["type"] == "row" or panel.get("description"), panel["title"]
    targets = _targets(dashboard)
    assert targets
    for title, target in targets:
        assert target["datasource"]["uid"] in uids, title
    kinds = {t["datasource"]["type"] for _, t in targets}
    assert kinds == {"grafana-postgresql-datasource", "prometheus"}


#: Grafana macros in dashboard SQL, replaced by plain SQL of the same shape before parsing.
GRAFANA_MACROS = [
    (re.compile(r"\$__timeFilter\(([^)]*)\)"), r"\1 > NOW() - INTERVAL '1 HOUR'"),
    (re.compile(r"\$__time(?:From|To)\(\)"), "NOW()"),
]


def _dashboard_sql(raw: str) -> exp.Expression:
    for pattern, replacement in GRAFANA_MACROS:
        raw = pattern.sub(replacement, raw)
    assert "$__" not in raw, f"unhandled Grafana macro in {raw!r}"
    return sqlglot.parse_one(raw, read="postgres")


def _queryable_objects() -> tuple[dict[str, dict[str, str]], bool]:
    """Objects of migrations/ a dashboard can SELECT from, with their columns.

    Materialized views and tables are queryable; sources (nothing stored) and sinks are
    not. Returns ``{name: {column: "TEXT"}}`` (a sqlglot schema) and whether any
    repeatable (R__) file exists yet.
    """
    files = sorted((ROOT / "migrations").glob("*.sql"))
    schema: dict[str, dict[str, str]] = {}
    for path in files:
        text = re.sub(r"\$\{\w+\}", "1", path.read_text())
        # sqlglot treats a statement with EMIT ON WINDOW CLOSE as opaque; the clause does
        # not change the view's columns.
        text = re.sub(r"EMIT\s+ON\s+WINDOW\s+CLOSE", "", text, flags=re.I)
        for stmt in sqlglot.parse(text, read="risingwave"):
            if not isinstance(stmt, exp.Create) or stmt.args.get("kind") not in ("VIEW", "TABLE"):
                continue
            target = stmt.this
            if isinstance(target, exp.Schema):
                columns = [c.name for c in target.expressions if isinstance(c, exp.ColumnDef)]
                name = target.this.name
            else:
                columns, name = list(stmt.expression.named_selects), target.name
            schema[name.lower()] = {column: "TEXT" for column in columns}
    return schema, any(f.name.startswith("R__") for f in files)


def test_dashboard_sql_reads_existing_views_and_columns(dashboard: dict[str, Any]) -> None:
    queries = {
        title: _dashboard_sql(t["rawSql"])
        for title, t in _targets(dashboard)
        if t["datasource"]["type"] == "grafana-postgresql-datasource"
    }
    assert queries and all(any(q.find_all(exp.Table)) for q in queries.values())
    schema, has_views = _queryable_objects()
    if not has_views:
        pytest.skip("migrations/ has no R__ files yet: SQL parsed, view names not checked")
    for title, query in queries.items():
        ctes = {cte.alias_or_name for cte in query.find_all(exp.CTE)}
        missing = {t.name.lower() for t in query.find_all(exp.Table)} - ctes - set(schema)
        assert not missing, f"panel {title!r} reads {missing}: no view or table in migrations/"
        try:
            qualify(query, schema=schema, dialect="postgres", validate_qualify_columns=True)
        except OptimizeError as exc:
            pytest.fail(f"panel {title!r}: {exc}")


def test_dashboard_check_catches_a_missing_column() -> None:
    schema = {"zone_load": {"zone_id": "TEXT", "load_kw": "TEXT"}}
    with pytest.raises(OptimizeError):
        qualify(
            _dashboard_sql("SELECT zone_id, cap_kw FROM zone_load"),
            schema=schema,
            dialect="postgres",
            validate_qualify_columns=True,
        )


def _grafana_expand(raw: str) -> str:
    """Expand the Grafana macros we use the way Grafana's Postgres datasource does."""
    window = "BETWEEN '2026-01-01T00:00:00Z' AND '2026-01-01T06:00:00Z'"
    raw = re.sub(r"\$__timeFilter\(([^)]*)\)", lambda m: f"{m.group(1)} {window}", raw)
    raw = raw.replace("$__timeFrom()", "'2026-01-01T00:00:00Z'")
    return raw.replace("$__timeTo()", "'2026-01-01T06:00:00Z'")


@pytest.mark.skipif(
    importlib.util.find_spec("pipeline.compiler") is None, reason="no pipeline.compiler yet"
)
def test_dashboard_sql_runs_on_the_compiled_views(dashboard: dict[str, Any], postgres: str) -> None:
    """Every Postgres panel's query on migrations/ applied to a real PostgreSQL.

    The embedded engine compiles the same migrations the dashboard reads on RisingWave,
    so a query that fails here (a type mismatch, an ambiguous column) fails there too.
    Time series panels must return Grafana's ``time`` column and a ``metric`` series name.
    """
    import psycopg

    from pipeline.migrate import apply

    apply(postgres, ROOT / "migrations", {"kafka_bootstrap": "kafka:9092"})
    with psycopg.connect(postgres, autocommit=True) as conn:
        for title, target in _targets(dashboard):
            if target["datasource"]["type"] != "grafana-postgresql-datasource":
                continue
            cursor = conn.execute(_grafana_expand(target["rawSql"]))
            columns = [c.name for c in cursor.description or []]
            cursor.fetchall()
            if target["format"] == "time_series":
                assert columns[:2] == ["time", "metric"], title
                assert len(columns) == 3, title


def test_dashboard_promql_parses_and_names_known_metrics(dashboard: dict[str, Any]) -> None:
    from tests.deploy.test_prometheus_rules import known_metric, metric_names

    exprs = [t["expr"] for _, t in _targets(dashboard) if t["datasource"]["type"] == "prometheus"]
    assert exprs
    for expr in exprs:
        for name in metric_names(expr):
            assert known_metric(name), f"{name} in {expr!r} is not in pipeline/metrics_names.py"


def _panel_rows(dsn: str, dashboard: dict[str, Any], around: str) -> dict[str, list[dict]]:
    """Each Postgres panel's rows as dicts, the dashboard's time range a day around ``around``."""
    import psycopg

    day = "INTERVAL '1 DAY'"
    window = f"BETWEEN TIMESTAMPTZ '{around}' - {day} AND TIMESTAMPTZ '{around}' + {day}"
    out: dict[str, list[dict]] = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        for title, target in _targets(dashboard):
            if target["datasource"]["type"] != "grafana-postgresql-datasource":
                continue
            sql = re.sub(r"\$__timeFilter\(([^)]*)\)", rf"\1 {window}", target["rawSql"])
            cursor = conn.execute(sql)
            names = [c.name for c in cursor.description or []]
            out[title] = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    return out


@pytest.mark.timeout(120)
@pytest.mark.skipif(
    importlib.util.find_spec("pipeline.engine") is None, reason="no embedded engine yet"
)
async def test_dashboard_shows_a_dr_event(dashboard: dict[str, Any], postgres: str) -> None:
    """A DR event driven through the real embedded engine, then every panel's query.

    Zone Z1 draws 10 kW (A 6, B 4) under a 5 kW zone limit; A accepts its command, B times
    out. The panels must show the zone at 200 % of its cap, the signal, both stations'
    limits, the 50 % acknowledgement and the alerts the engine raised for it.
    """
    golden = pytest.importorskip("tests.pipeline.golden.harness")
    async with golden.Harness(postgres) as h:
        await h.station("A", "Z1")
        await h.station("B", "Z1")
        for t in range(-60, 401, 10):
            await h.sample("A", 1, 6.0, t)
            await h.sample("B", 1, 4.0, t)
        await h.signal("sig1", "Z1", start=0, end=3600, zone_limit_kw=5.0)
        await h.result("A", "sig1", "Accepted", 5)
        await h.result("B", "sig1", "Timeout", 6)
        await h.result("A", "sig1", "Accepted", 400)  # moves the results' watermark on
        await h.tick(401)
        await h.tick(402)  # alert episodes come back frozen (pipeline.dr_alert_episodes)
        rows = _panel_rows(postgres, dashboard, golden.ts(0))

    (zone,) = rows["Zone load, cap and capacity"]
    assert (zone["zone_id"], zone["load_kw"], zone["cap_kw"]) == ("Z1", 10.0, 5.0)
    assert zone["cap_utilisation_pct"] == pytest.approx(200.0)
    assert rows["Zone utilisation of the DR cap"] == rows["Zone load, cap and capacity"]
    assert [r["zone_id"] for r in rows["Active DR signals"]] == ["Z1"]
    assert rows["Active DR signals"][0]["cap_kw"] == 5.0
    limits = {r["station_id"]: r["target_kw"] for r in rows["Station limits"]}
    # Control law v2 (docs/control-law.md): B timed out, so it is uncontrollable and its
    # measured 4.0 kW is reserved (commanded at it); A keeps its minimum charging current,
    # 6 A x 3 phases x 230 V = 4.14 kW, quantised up to 4.2. 4.0 + 4.2 > 5: infeasible.
    assert limits == {"A": 4.2, "B": 4.0}
    assert {r["metric"] for r in rows["Zone load per minute"]} == {"Z1"}
    acks = [r for r in rows["Command acknowledgement per DR signal"] if r["metric"] == "sig1"]
    assert acks and acks[0]["ack_rate"] == pytest.approx(0.5)
    alert_types = {r["alert_type"] for r in rows["Grid alerts"]}
    # signal_infeasible: B's reserved 4.0 kW and A's 4.2 kW minimum exceed the 5 kW cap
    assert alert_types == {"ack_rate_low", "signal_infeasible", "zone_over_cap"}
