"""A real Prometheus (Debian's server, unpacked into .venv/tools) scrapes the five services
running as processes over the local stack, every second, with the chart's alert rules
rendered by helm (short `for:` windows for the test). An opinion escalation and a dead
letter make their alerts fire; every dashboard query answers with at least one series.

``CITYDESK_DASHBOARDS_OUT=<dir>`` (``make dashboards``) also keeps the rendered panels there.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from citydesk import dashboards
from citydesk.processes import SERVICES, ServiceProcesses
from citydesk.stack import free_port
from shared import events as ev
from shared import topics as tp
from shared.auth import Role
from tests.deploy.conftest import chart_path, rendered_rules
from tests.deploy.tools import DeployTools, ToolUnavailable, fetch_prometheus
from tests.e2e import flows
from tests.e2e.conftest import start_city
from tests.support import auth, produce

pytestmark = pytest.mark.slow

NAMESPACE = "citydesk-test"
# short windows so the alerts fire within seconds; the expressions are the chart's own
TEST_THRESHOLDS = {
    "escalationFor": "5s",
    "escalationWindow": "10m",
    "deadLetterFor": "5s",
    "deadLetterWindow": "10m",
}
SCHOOL, COUNTY = "xs-zyzx", "xs"
DASHBOARD_FILES = sorted(chart_path("dashboards").glob("*.json"))


@dataclass
class Watched:
    """The city, and the Prometheus that scrapes it."""

    city: ServiceProcesses
    prometheus: str
    rules: dict[str, Any]
    started_at: float


def _wait_for(check: Any, what: str, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (httpx.HTTPError, OSError) as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def _prometheus_config(city: ServiceProcesses, rule_file: Path) -> dict[str, Any]:
    """Scrape every service each second; the target labels are what the chart's
    ServiceMonitor gives a pod (namespace, pod, service as the CityDesk name)."""
    return {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
        "rule_files": [str(rule_file)],
        "scrape_configs": [
            {
                "job_name": "citydesk",
                "honor_labels": True,
                "static_configs": [
                    {
                        "targets": [city.url(name).removeprefix("http://")],
                        "labels": {"namespace": NAMESPACE, "service": name, "pod": f"{name}-0"},
                    }
                    for name in SERVICES
                ],
            }
        ],
    }


@pytest.fixture(scope="module")
def watched(
    stack_env: dict[str, str], tools: DeployTools, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Watched]:
    try:
        server = fetch_prometheus()
    except ToolUnavailable as exc:
        pytest.skip(f"the Prometheus server is unavailable: {exc}")
    root = tmp_path_factory.mktemp("prometheus-city")
    overrides = [
        arg
        for name, value in TEST_THRESHOLDS.items()
        for arg in ("--set", f"metrics.prometheusRule.thresholds.{name}={value}")
    ]
    rules = rendered_rules(tools, *overrides)
    rule_file = root / "citydesk.rules.yaml"
    rule_file.write_text(yaml.safe_dump(rules, allow_unicode=True))
    city = start_city(
        root / "city",
        stack_env,
        database_prefix="prom",
        settings={
            "CITYDESK_SENTIMENT_GAUGE_REFRESH_SECONDS": "1",
            "CITYDESK_OVERDUE_CHECK_SECONDS": "2",
        },
        timeout=120,
    )
    port = free_port()
    config = root / "prometheus.yml"
    config.write_text(yaml.safe_dump(_prometheus_config(city, rule_file)))
    log = (root / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            str(server),
            f"--config.file={config}",
            f"--storage.tsdb.path={root / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-lifecycle",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for(
            lambda: httpx.get(f"{url}/-/ready", timeout=2).status_code == 200,
            "Prometheus to be ready",
            timeout=60,
        )

        def all_up() -> bool:
            targets = httpx.get(f"{url}/api/v1/targets", timeout=5).json()["data"]
            active = targets["activeTargets"]
            return len(active) == len(SERVICES) and all(t["health"] == "up" for t in active)

        _wait_for(all_up, "every service scraped", timeout=30)
        yield Watched(city=city, prometheus=url, rules=rules, started_at=time.time())
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
        city.stop_all()


def _query(watched: Watched, expr: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{watched.prometheus}/api/v1/query", params={"query": expr}, timeout=10)
    assert response.status_code == 200, response.text
    return list(response.json()["data"]["result"])


def _alerts(watched: Watched, name: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{watched.prometheus}/api/v1/alerts", timeout=10)
    return [a for a in response.json()["data"]["alerts"] if a["labels"]["alertname"] == name]


def _for_seconds(watched: Watched, name: str) -> float:
    rule = next(
        rule
        for group in watched.rules["groups"]
        for rule in group["rules"]
        if rule.get("alert") == name
    )
    text = str(rule.get("for", "0s"))
    return float(text[:-1]) * {"s": 1, "m": 60, "h": 3600}[text[-1]]


async def _escalate_an_opinion_alert(city: ServiceProcesses) -> None:
    """A negative burst about one school with 2-second deadlines: an alert that nobody
    acknowledges and that is handed up to the county, then the city."""
    async with httpx.AsyncClient(timeout=30) as http:
        admin = auth("jc", Role.ADMIN)
        config = (await http.get(f"{city.url('sentiment')}/config", headers=admin)).json()
        config["alerts"]["deadline_seconds"] = dict.fromkeys(
            config["alerts"]["deadline_seconds"], 2
        )
        put = await http.put(f"{city.url('sentiment')}/config", headers=admin, json=config)
        assert put.status_code == 200, put.text
        posts = [
            "西山区职业中学食堂饭菜变质，学生吃完呕吐腹泻，已经送医院了！",
            "西山区职业中学又出事了，十几个学生食物中毒住院，学校不回应。",
            "西山区职业中学食堂卫生太差，饭菜有异味，家长要求彻查。",
            "我家孩子在西山区职业中学吃午饭后肚子疼，食堂必须给个说法。",
            "西山区职业中学食物中毒事件上了热搜，监管部门在哪里？",
        ]
        marker = f"{time.time_ns()}"
        for index in range(10):
            event = ev.IntakeOpinionEvent.build(
                ev.IntakeOpinion(
                    item_id=f"prom-{marker}-{index}",
                    source="hot_search" if index == 9 else "微博",
                    school=SCHOOL,
                    text=posts[index % len(posts)],
                    published_at=ev.utcnow(),
                ),
                producer="xs-monitor",
                county=COUNTY,
                unit=SCHOOL,
            )
            await produce(
                tp.INTAKE_OPINIONS.name,
                event.model_dump_json().encode(),
                key=tp.INTAKE_OPINIONS.key(event),
            )
            await asyncio.sleep(0.2)


def test_the_rules_load_and_evaluate_without_errors(watched: Watched) -> None:
    def evaluated() -> list[dict[str, Any]] | None:
        groups = httpx.get(f"{watched.prometheus}/api/v1/rules", timeout=10).json()["data"]
        rules = [rule for group in groups["groups"] for rule in group["rules"]]
        done = all(not rule.get("lastEvaluation", "0001").startswith("0001") for rule in rules)
        return rules if rules and done else None

    rules = _wait_for(evaluated, "every rule evaluated once", timeout=20)
    wanted = {rule["alert"] for group in watched.rules["groups"] for rule in group["rules"]}
    assert {rule["name"] for rule in rules} == wanted
    broken = {rule["name"]: rule.get("lastError") for rule in rules if rule["health"] != "ok"}
    assert not broken, broken


async def test_an_escalation_fires_the_escalation_alert_within_its_for_window(
    watched: Watched,
) -> None:
    # the counter is scraped at zero before anything escalates: the first one is an increase
    counter = "citydesk_sentiment_alerts_escalated_total"
    before = _query(watched, f'{counter}{{namespace="{NAMESPACE}"}}')
    assert {s["metric"]["to_level"] for s in before} == {"county", "city"}
    assert all(float(s["value"][1]) == 0 for s in before)

    await _escalate_an_opinion_alert(watched.city)

    def escalated() -> bool:
        found = _query(watched, "sum(citydesk_sentiment_alerts_escalated_total) > 0")
        return bool(found)

    await asyncio.to_thread(_wait_for, escalated, "the escalation scraped", 60)
    seen = time.monotonic()
    window = _for_seconds(watched, "CitydeskOpinionAlertEscalated")

    def firing() -> list[dict[str, Any]]:
        found = _alerts(watched, "CitydeskOpinionAlertEscalated")
        return [alert for alert in found if alert["state"] == "firing"]

    alerts = await asyncio.to_thread(_wait_for, firing, "the escalation alert firing", window + 15)
    # one scrape, one evaluation to go pending, then the `for:` window
    took = time.monotonic() - seen
    print(f"\nescalation alert firing {took:.1f} s after the escalation was scraped")
    assert took <= window + 5, f"the alert took {took:.1f} s, its for: window is {window} s"
    assert alerts[0]["labels"]["namespace"] == NAMESPACE
    assert alerts[0]["annotations"]["runbook_zh"] and alerts[0]["annotations"]["runbook_en"]

    # the alert ends at city level, unacknowledged: the state alerts see it too
    def state_alerts() -> set[str]:
        names = {"CitydeskOpinionAlertSerious", "CitydeskOpinionAlertOverdue"}
        return {
            a["labels"]["alertname"]
            for name in names
            for a in _alerts(watched, name)
            if a["state"] in ("pending", "firing")
        }

    assert await asyncio.to_thread(_wait_for, state_alerts, "the opinion state alerts", 30)


async def test_a_dead_letter_fires_the_dead_letter_alert(watched: Watched) -> None:
    # an intake record that is not a CityDesk event: dead-lettered at once, as `invalid`
    await produce(tp.INTAKE_STORIES.name, b"\xff not an event", key=COUNTY.encode())

    def firing() -> list[dict[str, Any]]:
        return [
            a
            for a in _alerts(watched, "CitydeskDeadLetters")
            if a["state"] == "firing" and a["labels"]["topic"] == tp.INTAKE_STORIES.name
        ]

    window = _for_seconds(watched, "CitydeskDeadLetters")
    sent = time.monotonic()
    alerts = await asyncio.to_thread(_wait_for, firing, "the dead-letter alert firing", window + 30)
    print(f"\ndead-letter alert firing {time.monotonic() - sent:.1f} s after the record was sent")
    assert alerts[0]["labels"]["reason"] == "invalid"
    assert "citydesk dlq replay intake.stories" in alerts[0]["annotations"]["runbook_en"]


async def test_a_story_and_api_calls_show_with_their_real_route_labels(watched: Watched) -> None:
    """One story through the three reviews, and the calls a browser makes besides the API
    (docs, schema, a wrong address): each gets the route it used, probes stay apart."""
    city = watched.city
    async with httpx.AsyncClient(timeout=30) as http:
        media_id = await flows.upload_photo(http, city, "xs-syxx", seed=1717)
        story_id = await flows.submit_story(
            http, city, unit="xs-syxx", media_ids=[media_id],
            title="西山区实验小学开展秋季运动会",
            body="十一月，西山区实验小学举行秋季运动会，全校师生一千余人参加。运动会设田径、跳绳、拔河等"
            "项目，展示了学校体育教学和“阳光体育”活动的成果，增强了学生的集体荣誉感。",
        )  # fmt: skip
        await flows.approve_through_every_level(
            http, city, story_id=story_id, school="xs-syxx", county="xs"
        )
        for name in SERVICES:
            for path in ("/docs", "/openapi.json", "/no-such-page"):
                await http.get(f"{city.url(name)}{path}")

    def labelled() -> list[dict[str, Any]]:
        found = _query(
            watched,
            'sum by (route, status) (citydesk_http_requests_total{route=~"/docs|unmatched"})',
        )
        return found if len(found) == 2 else []

    routes = await asyncio.to_thread(_wait_for, labelled, "docs and unmatched routes", 20)
    assert {(s["metric"]["route"], s["metric"]["status"]) for s in routes} == {
        ("/docs", "200"),
        ("unmatched", "404"),
    }
    # the scrape and probe routes are counted but have no latency series
    assert not _query(watched, 'citydesk_http_request_duration_seconds_count{route="/metrics"}')
    # no _created series: they doubled the series count
    assert not _query(watched, '{__name__=~"citydesk_.*_created"}')


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=[p.stem for p in DASHBOARD_FILES])
def test_every_dashboard_query_returns_a_series(watched: Watched, path: Path) -> None:
    dashboard = json.loads(path.read_text())
    variables = {**dashboards.default_variables(dashboard), "namespace": NAMESPACE}
    empty = []
    for panel in dashboards.panels_of(dashboard):
        for expr in panel.exprs:
            query = dashboards.concrete(expr, variables, "1m")
            if _query(watched, query):
                continue
            # a scrape that outlasted its one-second timeout on a busy machine marks that
            # service's series stale until the next one: ask again for a few seconds
            print(f"\nasked again: {panel.title}")
            try:
                _wait_for(lambda q=query: _query(watched, q), query, timeout=10)
            except AssertionError:
                empty.append(f"{panel.title}: {expr}")
    if empty:
        targets = httpx.get(f"{watched.prometheus}/api/v1/targets", timeout=5).json()
        health = [
            (t["labels"]["service"], t["health"], t["lastError"])
            for t in targets["data"]["activeTargets"]
        ]
        raise AssertionError("queries without a series:\n" + "\n".join(empty) + f"\n{health}")
    # the variables Grafana fills its drop-downs from
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            metric = variable["query"]["query"].split("(", 1)[1].split(",")[0].split("{")[0]
            assert _query(watched, metric), variable["name"]


def test_every_scrape_stays_small_and_quick(watched: Watched) -> None:
    """Priming label values adds series: each service's page stays a few thousand samples
    and is answered well inside the one-second scrape."""
    samples = {
        s["metric"]["service"]: float(s["value"][1])
        for s in _query(watched, 'max_over_time(scrape_samples_scraped{job="citydesk"}[5m])')
    }
    seconds = {
        s["metric"]["service"]: float(s["value"][1])
        for s in _query(
            watched, 'quantile_over_time(0.5, scrape_duration_seconds{job="citydesk"}[5m])'
        )
    }
    print(f"\nsamples per scrape: {samples}\nmedian scrape seconds: {seconds}")
    assert set(samples) == set(SERVICES)
    assert all(count < 5000 for count in samples.values()), samples
    assert all(value < 0.5 for value in seconds.values()), seconds


def test_the_dashboards_render_to_png(watched: Watched, tmp_path: Path) -> None:
    out = Path(os.environ.get("CITYDESK_DASHBOARDS_OUT") or tmp_path)
    minutes = (time.time() - watched.started_at) / 60 + 0.05
    written = dashboards.render_all(watched.prometheus, out, minutes=minutes, step=2.0)
    assert {p.name for p in written} == {f"{p.stem}.png" for p in DASHBOARD_FILES}
    for png in written:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
