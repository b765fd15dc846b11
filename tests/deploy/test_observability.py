"""Alert rules and Grafana dashboards: promtool accepts them, the alerts fire on the
situations they describe, and every metric they read exists on the running services."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.metrics import MetricWrapperBase

from shared import observability
from tests.deploy.conftest import chart_path, rendered_rules
from tests.deploy.promql import (
    SYNTHETIC,
    dashboard_expressions,
    dashboard_variable_metrics,
    exposed_series,
    metric_names,
    rule_expressions,
)
from tests.deploy.tools import DeployTools
from tests.support import eventually

SERVICES = ("submission", "media", "review", "scoring", "sentiment")
RULES = chart_path("rules", "citydesk.rules.yaml")
DASHBOARDS = sorted(chart_path("dashboards").glob("*.json"))


def _promtool(tools: DeployTools) -> Path:
    if tools.promtool is None:
        pytest.skip(f"promtool unavailable: {tools.promtool_missing_reason}")
    return tools.promtool


def _used_metrics() -> dict[str, set[str]]:
    """Each metric name read by an alert or a dashboard, with where it is read."""
    used: dict[str, set[str]] = {}
    for expr in rule_expressions(yaml.safe_load(RULES.read_text())):
        for name in metric_names(expr):
            used.setdefault(name, set()).add(RULES.name)
    for path in DASHBOARDS:
        names = dashboard_variable_metrics(path)
        for expr in dashboard_expressions(path):
            names |= metric_names(expr)
        for name in names:
            used.setdefault(name, set()).add(path.name)
    return used


def _shared_series() -> set[str]:
    """Series names of the metrics every service has (shared/observability.py)."""
    lines = []
    for metric in vars(observability).values():
        if isinstance(metric, MetricWrapperBase):
            for family in metric.describe():
                name = family.name + ("_total" if family.type == "counter" else "")
                lines.append(f"# TYPE {name} {family.type}")
    return exposed_series("\n".join(lines))


def _owner(name: str) -> str | None:
    """The service whose own metric ``name`` is (``citydesk_<service>_...``)."""
    return next((svc for svc in SERVICES if name.startswith(f"citydesk_{svc}_")), None)


def test_metric_names_are_read_from_promql_and_not_from_labels_or_functions() -> None:
    expr = (
        "topk(5, histogram_quantile(0.95, sum by (le, service) (rate("
        'citydesk_http_request_duration_seconds_bucket{service=~"$service", route="/x"}'
        "[$__rate_interval])))) > bool 0.5 and on (service) citydesk_ready offset 5m"
    )
    assert metric_names(expr) == {"citydesk_http_request_duration_seconds_bucket", "citydesk_ready"}


def _write_rules(tools: DeployTools, folder: Path, *, annotations: bool = True) -> Path:
    """The chart's rules as helm renders them with the default thresholds."""
    rules = rendered_rules(tools)
    if not annotations:
        for group in rules["groups"]:
            for rule in group["rules"]:
                rule.pop("annotations", None)
    path = folder / "citydesk.rules.yaml"
    path.write_text(yaml.safe_dump(rules, allow_unicode=True))
    return path


def test_alert_rules_pass_promtool_check(tools: DeployTools, tmp_path: Path) -> None:
    promtool = _promtool(tools)
    result = subprocess.run(
        [str(promtool), "check", "rules", str(_write_rules(tools, tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_threshold_comes_from_values(tools: DeployTools) -> None:
    raw = RULES.read_text()
    rendered = yaml.safe_dump(rendered_rules(tools), allow_unicode=True)
    assert "${" in raw and "${" not in rendered
    thresholds = yaml.safe_load(chart_path("values.yaml").read_text())["metrics"]["prometheusRule"][
        "thresholds"
    ]
    used = set(re.findall(r"\$\{(\w+)\}", raw))
    assert used == set(thresholds), "thresholds in values.yaml and rules differ"
    lowered = rendered_rules(tools, "--set", "metrics.prometheusRule.thresholds.outboxPending=3")
    (outbox,) = [
        rule
        for group in lowered["groups"]
        for rule in group["rules"]
        if rule["alert"] == "CitydeskOutboxNotDrained"
    ]
    assert "(citydesk_outbox_pending) > 3" in outbox["expr"]


def test_alerts_fire_on_the_situations_they_describe(tools: DeployTools, tmp_path: Path) -> None:
    promtool = _promtool(tools)
    _write_rules(tools, tmp_path, annotations=False)
    shutil.copy(Path(__file__).parent / "data" / "alerts.test.yaml", tmp_path)
    result = subprocess.run(
        [str(promtool), "test", "rules", "alerts.test.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_says_what_it_means_and_what_to_do_in_both_languages(
    tools: DeployTools,
) -> None:
    rules = rendered_rules(tools)
    alerts = [rule for group in rules["groups"] for rule in group["rules"]]
    names = {rule["alert"] for rule in alerts}
    assert {
        "CitydeskConsumerLagHigh",
        "CitydeskConsumerStalled",
        "CitydeskDeadLetters",
        "CitydeskHandlerErrorRate",
        "CitydeskOutboxNotDrained",
        "CitydeskHttp5xxRate",
        "CitydeskServiceNotReady",
        "CitydeskReviewCasesOverdue",
        "CitydeskReviewCaseWaitingLong",
        "CitydeskOpinionAlertSerious",
        "CitydeskOpinionAlertOverdue",
        "CitydeskOpinionAlertEscalated",
    } <= names
    chinese = re.compile(r"[\u4e00-\u9fff]")
    for rule in alerts:
        notes = rule["annotations"]
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert notes["summary"] and notes["description"] and notes["runbook_en"], rule["alert"]
        assert chinese.search(notes["runbook_zh"]) and chinese.search(notes["summary_zh"])
        assert "含义" in notes["runbook_zh"] and "处置" in notes["runbook_zh"], rule["alert"]
        # two releases in one Prometheus stay apart
        if "by (" in rule["expr"]:
            assert "namespace" in rule["expr"], rule["alert"]
    stalled = next(rule for rule in alerts if rule["alert"] == "CitydeskConsumerStalled")
    assert "citydesk_event_redeliveries_total" in stalled["expr"]
    replay = next(rule for rule in alerts if rule["alert"] == "CitydeskDeadLetters")
    assert "citydesk dlq replay" in replay["annotations"]["runbook_en"]
    assert "citydesk dlq replay" in replay["annotations"]["runbook_zh"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=[path.stem for path in DASHBOARDS])
def test_dashboard_is_valid_json_with_unique_panels(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    assert dashboard["uid"] and dashboard["title"]
    panels = dashboard["panels"]
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        if panel["type"] != "row":
            assert panel["targets"], panel["title"]
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    # importable: a schema version, a datasource variable, a namespace to choose
    assert dashboard["schemaVersion"] >= 36
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["namespace"]["type"] == "query"
    for expr in dashboard_expressions(path):
        assert 'namespace=~"$namespace"' in expr, expr
        if "citydesk_http_request" in expr:
            assert 'route!~"/metrics|/healthz|/readyz"' in expr, expr


def test_dashboard_queries_are_valid_promql(tools: DeployTools, tmp_path: Path) -> None:
    # promtool parses recording rules, so each dashboard query becomes one
    rules = []
    for path in DASHBOARDS:
        for index, expr in enumerate(dashboard_expressions(path)):
            concrete = expr.replace("$__rate_interval", "5m").replace('=~"$', '=~"x')
            rules.append({"record": f"dashboard:{path.stem}:{index}", "expr": concrete})
    rule_file = tmp_path / "dashboards.rules.yaml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run(
        [str(_promtool(tools)), "check", "rules", str(rule_file)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_operations_and_business_dashboards_show_what_was_asked() -> None:
    ops = _used_metrics_of(chart_path("dashboards", "operations.json"))
    assert {
        "citydesk_events_handled_total",
        "citydesk_consumer_lag",
        "citydesk_dlq_messages_total",
        "citydesk_handler_duration_seconds_bucket",
        "citydesk_http_request_duration_seconds_bucket",
        "citydesk_events_failed_total",
        "citydesk_ready",
    } <= ops
    business = _used_metrics_of(chart_path("dashboards", "business.json"))
    assert {
        "citydesk_submission_stories_submitted_total",
        "citydesk_review_queue_oldest_seconds",
        "citydesk_review_publications_total",
        "citydesk_review_adoptions_total",
        "citydesk_sentiment_alerts_open",
    } <= business


def _used_metrics_of(path: Path) -> set[str]:
    names = set()
    for expr in dashboard_expressions(path):
        names |= metric_names(expr)
    return names


def test_every_metric_read_is_a_shared_metric_or_a_services_own() -> None:
    shared = _shared_series()
    for name, where in _used_metrics().items():
        assert name in shared or name in SYNTHETIC or _owner(name), (
            f"{name} (read in {sorted(where)}) is neither a shared metric nor a service's own"
        )


@pytest.mark.usefixtures("stack_env")
@pytest.mark.parametrize("service", SERVICES)
async def test_every_metric_read_exists_on_the_running_service(service: str) -> None:
    from tests.support import run_service

    wanted = {
        name: where
        for name, where in _used_metrics().items()
        if _owner(name) == service or name in _shared_series()
    }
    async with run_service(
        service, mongo_database=f"citydesk_deploy_check_{service}", run_consumers=False
    ) as running:
        assert (await running.client.get("/healthz")).status_code == 200
        assert (await running.client.get("/readyz")).status_code == 200
        response = await running.client.get("/metrics")
    assert response.status_code == 200
    offered = exposed_series(response.text)
    missing = {name: sorted(where) for name, where in wanted.items() if name not in offered}
    assert not missing, f"{service}'s /metrics lacks series read by alerts or dashboards: {missing}"


async def test_every_metric_the_console_is_watched_by_exists_on_the_console() -> None:
    """The console owns no events or outbox: the request, readiness and process metrics
    alerts and dashboards read must be on its /metrics, and its readiness names the five
    services it calls."""
    import httpx

    from services.console.app import create_app
    from services.console.settings import ConsoleSettings

    # nothing answers on port 9: every service looks down
    down = {f"console_{name}_url": "http://127.0.0.1:9" for name in SERVICES}
    app = create_app(ConsoleSettings(**down))
    wanted = {
        name: where
        for name, where in _used_metrics().items()
        if name in _shared_series() and name.startswith(("citydesk_http_", "citydesk_ready"))
    }
    assert "citydesk_ready" in wanted
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://console") as client:
            assert (await client.get("/healthz")).status_code == 200
            ready = await client.get("/readyz")
            response = await client.get("/metrics")
    assert ready.status_code == 503
    assert set(ready.json()["checks"]) == set(SERVICES)
    assert 'citydesk_ready{service="console"} 0.0' in response.text
    offered = exposed_series(response.text)
    missing = {name: sorted(where) for name, where in wanted.items() if name not in offered}
    assert not missing, (
        f"the console's /metrics lacks series read by alerts or dashboards: {missing}"
    )


def test_precreate_needs_every_label_and_creates_each_combination_at_zero() -> None:
    from prometheus_client import CollectorRegistry, Counter

    counter = Counter("x_total", "x", ["level", "outcome"], registry=CollectorRegistry())
    with pytest.raises(ValueError, match="missing labels"):
        observability.precreate(counter, level=["a"])
    observability.precreate(counter, level=["school", "city"], outcome=["ok", "failed"])
    samples = {
        (s.labels["level"], s.labels["outcome"]): s.value
        for metric in counter.collect()
        for s in metric.samples
    }
    assert samples == {
        (level, outcome): 0.0 for level in ("school", "city") for outcome in ("ok", "failed")
    }
    assert not [s for m in counter.collect() for s in m.samples if s.name.endswith("_created")]


def test_bus_metrics_of_a_service_start_at_zero() -> None:
    observability.prime_bus_metrics(
        "primed",
        consumed=[("g.primed.story.reviewed", "story.reviewed", "on_reviewed")],
        published=["story.published"],
        counties=["dh", "xs"],
    )
    text = generate_latest().decode()
    for line in (
        'citydesk_events_handled_total{handler="on_reviewed",outcome="dead_lettered",'
        'service="primed",topic="story.reviewed"} 0.0',
        'citydesk_dlq_messages_total{county="unknown",reason="invalid",service="primed",'
        'topic="story.reviewed"} 0.0',
        'citydesk_event_redeliveries_total{service="primed",topic="story.reviewed"} 0.0',
        'citydesk_events_published_total{service="primed",topic="story.published"} 0.0',
        'citydesk_outbox_pending{service="primed"} 0.0',
    ):
        assert line in text, line


async def test_routes_are_labelled_by_template_and_readiness_comes_from_the_background() -> None:
    import httpx
    from fastapi import FastAPI

    state = {"up": False}

    async def dependency() -> None:
        if not state["up"]:
            raise RuntimeError("down")

    app = FastAPI()
    observability.install_http_observability(
        app, service="labelled", checks={"db": dependency}, readiness_every_seconds=0.05
    )

    @app.get("/items/{item_id}")
    async def item(item_id: str) -> dict[str, str]:
        return {"id": item_id}

    def count(route: str, status: str) -> float | None:
        labels = {"service": "labelled", "method": "GET", "route": route, "status": status}
        return REGISTRY.get_sample_value("citydesk_http_requests_total", labels)

    def ready() -> float | None:
        return REGISTRY.get_sample_value("citydesk_ready", {"service": "labelled"})

    async with app.router.lifespan_context(app):
        # every API route's success and 500 series exist before the first call
        assert count("/items/{item_id}", "200") == 0 and count("/items/{item_id}", "500") == 0
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            await client.get("/items/7")
            await client.get("/docs")
            await client.get("/nowhere")
            assert (await client.get("/readyz")).status_code == 503
            await eventually(lambda: ready() == 0, timeout=5, what="not ready")
            state["up"] = True
            # nobody called /readyz: the gauge follows the dependency on its own
            await eventually(lambda: ready() == 1, timeout=5, what="ready in the background")
    assert count("/items/{item_id}", "200") == 1
    assert count("/docs", "200") == 1
    assert count("unmatched", "404") == 1
    assert count("/readyz", "503") == 1
    latency = REGISTRY.get_sample_value(
        "citydesk_http_request_duration_seconds_count",
        {"service": "labelled", "method": "GET", "route": "/readyz"},
    )
    assert latency is None, "probe routes stay out of the latency histogram"
