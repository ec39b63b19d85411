"""The monitoring files in deploy/: what /metrics serves passes `promtool check metrics`, the example
alerting rules load and fire as their unit tests say, the Grafana dashboard fits Grafana's dashboard
schema (grafana-foundation-sdk's models), and every metric and label the rules and the dashboard
query is one a real /metrics response serves.

promtool comes from Debian's `prometheus` package: `make tools` unpacks it into .venv/tools/bin
(without installing the package, which would start a Prometheus server). Where it is missing, the
tests that run it are skipped, saying so.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from grafana_foundation_sdk.cog import plugins
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.runtime import Runtime
from grafana_foundation_sdk.models.dashboard import (
    Dashboard,
    DashboardCursorSync,
    VariableHide,
    VariableRefresh,
    VariableSort,
    VariableType,
)
from prometheus_client.parser import text_string_to_metric_families

from pipelines.collection import cycles
from pipelines.models import Incident, IncidentStatus, Pipeline, RuleKind, Severity
from tests.ui.test_integrations import seed

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
RULES = PROMETHEUS / "opsboard-alerts.yml"
RULE_TESTS = PROMETHEUS / "opsboard-alerts.test.yml"
SCRAPE = PROMETHEUS / "scrape-example.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "opsboard-dashboard.json"
TOKEN = "scrape-token-0123456789abcdef"
#: Grafana 10.4 to 11.2 store dashboards at schema version 39; later versions migrate it on load.
SCHEMA_VERSION = 39
#: Labels Prometheus adds to every scraped series.
TARGET_LABELS = {"job", "instance"}
METRIC = re.compile(r"\bopsboard_[a-z0-9_]+\b")
MATCHERS = re.compile(r"\{([^{}]*)\}")
MATCHER_LABEL = re.compile(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)")
GROUPING = re.compile(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)")


def find_promtool() -> str | None:
    unpacked = Path(sys.prefix) / "tools" / "bin" / "promtool"
    if os.access(unpacked, os.X_OK):
        return str(unpacked)
    return shutil.which("promtool")


PROMTOOL = find_promtool()
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool not found: `make tools` unpacks it from Debian's prometheus package into .venv/tools/bin",
)


def promtool(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([PROMTOOL, *args], input=stdin, capture_output=True, timeout=60, cwd=PROMETHEUS, check=False)


def rules() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def panels(board: dict) -> list[dict]:
    """Every panel, those inside collapsed rows included."""
    return [q for p in board["panels"] for q in [p, *p.get("panels", [])]]


def dashboard_queries(board: dict) -> list[str]:
    exprs = [t["expr"] for p in panels(board) for t in p.get("targets", [])]
    return exprs + [v["query"] for v in board["templating"]["list"] if v["type"] == "query"]


def labels_in(expr: str) -> set[str]:
    found = {m for block in MATCHERS.findall(expr) for m in MATCHER_LABEL.findall(block)}
    return found | {name.strip() for group in GROUPING.findall(expr) for name in group.split(",") if name.strip()}


@pytest.fixture
def exposition(client, target, register, account, settings) -> str:
    """A real /metrics response, scraped with the bearer token, with pipelines in every state the
    files query: synced ones with a DLQ, a time to loss and Lambda figures, a disabled one, open
    incidents, and a fast and a metrics cycle that counted their AWS calls."""
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOWED_IPS = ()
    orders, billing = register("orders"), register("billing")
    Pipeline.objects.create(
        name="archive", account=account, enabled=False, queue_url="https://sqs.us-east-1.amazonaws.com/1/archive"
    )
    seed(target, orders, visible=5, dlq=2)
    seed(target, billing, visible=1)
    assert cycles.run_fast_cycle(account, [orders, billing]).errors == {}
    cycles.run_metrics_cycle(account, [orders, billing])
    Pipeline.objects.filter(pk=orders.pk).update(
        oldest_age=1800,
        time_to_loss=5400.0,
        drain_rate=12.0,
        recent_invocations=40,
        recent_errors=3,
        recent_throttles=1,
    )
    Incident.objects.all().delete()
    Incident.objects.create(pipeline=orders, rule=RuleKind.DLQ, severity=Severity.WARNING, summary="DLQ")
    Incident.objects.create(
        pipeline=orders,
        rule=RuleKind.TIME_TO_LOSS,
        severity=Severity.CRITICAL,
        status=IncidentStatus.ACKNOWLEDGED,
        summary="loss",
    )
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain")
    return response.content.decode()


# --- /metrics --------------------------------------------------------------------------------------


@needs_promtool
def test_it_serves_metrics_promtool_finds_nothing_wrong_with(exposition):
    checked = promtool("check", "metrics", stdin=exposition.encode())
    assert (checked.returncode, checked.stdout + checked.stderr) == (0, b"")


def test_every_metric_and_label_the_rules_and_the_dashboard_query_is_served(exposition):
    families = list(text_string_to_metric_families(exposition))
    served = {s.name for f in families for s in f.samples}
    labels = TARGET_LABELS | {name for f in families for s in f.samples for name in s.labels}
    queries = {"rules": [r["expr"] for r in rules()], "dashboard": dashboard_queries(dashboard())}
    for source, exprs in queries.items():
        used = {name for expr in exprs for name in METRIC.findall(expr)}
        assert len(used) >= 5, source  # the pattern found the queries' metrics at all
        assert used - served == set(), f"{source} query metrics /metrics does not serve"
        assert {name for expr in exprs for name in labels_in(expr)} - labels == set(), f"{source} labels"


# --- alerting rules --------------------------------------------------------------------------------


@needs_promtool
def test_the_alerting_rules_pass_promtool():
    checked = promtool("check", "rules", "--lint=all", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(rules())} rules found" in checked.stdout.decode()


@needs_promtool
def test_the_alerts_fire_as_their_unit_tests_say():
    tested = promtool("test", "rules", str(RULE_TESTS))
    assert tested.returncode == 0, (tested.stdout + tested.stderr).decode()


def test_each_alert_waits_has_a_severity_and_names_its_pipeline():
    for rule in rules():
        assert re.fullmatch(r"\d+[smh]", rule.get("for", "")), rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert set(rule["annotations"]) >= {"summary", "description"}, rule["alert"]
        if "opsboard_pipeline_" in rule["expr"]:
            for text in (rule["annotations"]["summary"], rule["annotations"]["description"]):
                assert "{{ $labels.pipeline }}" in text and "{{ $labels.account }}" in text, rule["alert"]


@needs_promtool
def test_the_scrape_example_is_a_prometheus_configuration_sending_the_token():
    checked = promtool("check", "config", "--syntax-only", str(SCRAPE))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    (job,) = yaml.safe_load(SCRAPE.read_text())["scrape_configs"]
    assert job["authorization"]["type"] == "Bearer" and job["authorization"]["credentials_file"]
    # The scrape-down alert watches this job.
    assert f'up{{job="{job["job_name"]}"}}' in {r["expr"].split(" ")[0] for r in rules()}


# --- Grafana dashboard -----------------------------------------------------------------------------


def lost(mine, kept, path="$"):
    """Where a value of `mine` is missing from, or different in, `kept` (which may hold more)."""
    if isinstance(mine, dict):
        if not isinstance(kept, dict):
            return [f"{path} is not an object"]
        return [p for k, v in mine.items() for p in (lost(v, kept[k], f"{path}.{k}") if k in kept else [f"{path}.{k}"])]
    if isinstance(mine, list):
        if not isinstance(kept, list) or len(mine) != len(kept):
            return [f"{path} is not the same list"]
        return [p for i, (a, b) in enumerate(zip(mine, kept)) for p in lost(a, b, f"{path}[{i}]")]
    return [] if mine == kept else [f"{path}: {mine!r} became {kept!r}"]


def test_the_dashboard_fits_grafanas_dashboard_schema():
    """grafana-foundation-sdk's models are generated from Grafana's schema (dashboard, panel plugins'
    options, the Prometheus query): read into them and written back, a key the schema does not know
    at that place is dropped. Their enums hold the allowed values of the enumerated fields."""
    board = dashboard()
    plugins.register_default_plugins()
    kept = json.loads(json.dumps(Dashboard.from_json(board), cls=JSONEncoder))
    assert lost(board, kept) == []
    assert board["schemaVersion"] == SCHEMA_VERSION
    DashboardCursorSync(board["graphTooltip"])
    for variable in board["templating"]["list"]:
        VariableType(variable["type"])
        for field, enum in (("refresh", VariableRefresh), ("sort", VariableSort), ("hide", VariableHide)):
            if field in variable:
                enum(variable[field])
    known = set(Runtime().panelcfg_variants) | {"row"}
    assert {p["type"] for p in panels(board)} <= known


#: What Grafana puts in place of its variables before a query reaches Prometheus.
GRAFANA_VARIABLES = {"$__rate_interval": "4m", "$account": ".*", "$pipeline": ".*"}


@needs_promtool
def test_the_dashboards_queries_are_promql_prometheus_parses(tmp_path):
    """promtool parses expressions in rule files: each panel query, variables substituted, as a recording rule."""
    exprs = [t["expr"] for p in panels(dashboard()) for t in p.get("targets", [])]
    for variable, value in GRAFANA_VARIABLES.items():
        exprs = [e.replace(variable, value) for e in exprs]
    assert not [e for e in exprs if "$" in e], "a Grafana variable the test does not substitute"
    recorded = {
        "groups": [
            {"name": "dashboard", "rules": [{"record": f"panel:query{i}", "expr": e} for i, e in enumerate(exprs)]}
        ]
    }
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(recorded))
    checked = promtool("check", "rules", str(path))
    assert checked.returncode == 0, (checked.stdout + checked.stderr).decode()


def test_the_dashboard_is_laid_out_on_the_grid_and_queries_the_chosen_data_source():
    board = dashboard()
    every = panels(board)
    assert len({p["id"] for p in every}) == len(every)
    cells = set()
    for p in every:
        pos = p["gridPos"]
        assert all(isinstance(pos[k], int) for k in "hwxy") and pos["x"] + pos["w"] <= 24, p["title"]
        area = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])}
        assert not area & cells, f"{p['title']} overlaps another panel"
        cells |= area
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert refs and len(set(refs)) == len(refs) and all(t["expr"].strip() for t in p["targets"]), p["title"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    for name in ("account", "pipeline"):
        assert variables[name]["type"] == "query" and variables[name]["query"].startswith("label_values(")
        assert variables[name]["datasource"]["uid"] == "${datasource}"


def test_the_dashboard_has_one_row_per_pipeline_with_the_figures_that_matter():
    (table,) = [p for p in panels(dashboard()) if p["type"] == "table"]
    exprs = " ".join(t["expr"] for t in table["targets"])
    for metric in (
        "opsboard_pipeline_health",
        "opsboard_pipeline_backlog_messages",
        "opsboard_pipeline_dlq_messages",
        "opsboard_pipeline_oldest_message_age_seconds",
        "opsboard_pipeline_time_to_loss_seconds",
    ):
        assert metric in exprs
    # Instant table queries, one series per pipeline each, merged into one row per pipeline.
    assert all(
        t["instant"] and t["format"] == "table" and "by (account, pipeline, queue" in t["expr"]
        for t in table["targets"]
    )
    assert table["transformations"][0]["id"] == "merge"
