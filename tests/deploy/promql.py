"""The metric names a PromQL expression or a Grafana dashboard reads, and the series
names a ``/metrics`` page offers."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

_VARIABLES = re.compile(r"\$\{?\w+\}?")
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPINGS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"(?<![\w.])[a-zA-Z_:][a-zA-Z0-9_:]*")
_KEYWORDS = {
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "inf",
    "nan",
    "atan2",
}
_LABEL_VALUES = re.compile(r"label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,")
# Series Prometheus makes itself for every target, never on a /metrics page.
SYNTHETIC = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}


def metric_names(expr: str) -> set[str]:
    """Metric names selected in ``expr`` (Grafana variables allowed)."""
    text = _VARIABLES.sub("5m", expr)
    text = _STRINGS.sub('""', text)
    text = _MATCHERS.sub("", text)
    text = _RANGES.sub("", text)
    text = _GROUPINGS.sub("", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        name = match.group(0)
        if name.lower() in _KEYWORDS or text[match.end() :].lstrip().startswith("("):
            continue
        names.add(name)
    return names


def _walk_panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = []
    for panel in panels:
        found.append(panel)
        found.extend(_walk_panels(panel.get("panels", [])))
    return found


def dashboard_expressions(path: Path) -> list[str]:
    """Every PromQL expression of a dashboard's panels."""
    dashboard = json.loads(path.read_text())
    return [
        target["expr"]
        for panel in _walk_panels(dashboard.get("panels", []))
        for target in panel.get("targets", [])
        if target.get("expr")
    ]


def dashboard_variable_metrics(path: Path) -> set[str]:
    """Metrics the dashboard's template variables read (``label_values(metric, label)``)."""
    dashboard = json.loads(path.read_text())
    names: set[str] = set()
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        text = query.get("query", "") if isinstance(query, dict) else str(query or "")
        names.update(_LABEL_VALUES.findall(text))
    return names


def rule_expressions(rules: dict[str, Any]) -> list[str]:
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def exposed_series(metrics_text: str) -> set[str]:
    """Series names a /metrics page offers, from its ``# TYPE`` lines: a family is listed
    there before it has any sample, so a labelled metric counts as soon as it exists."""
    suffixes = {
        "counter": ("", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "summary": ("", "_sum", "_count", "_created"),
    }
    series: set[str] = set()
    for line in metrics_text.splitlines():
        if not line.startswith("# TYPE "):
            continue
        _, _, name, kind = line.split(maxsplit=3)
        if kind == "counter" and name.endswith("_total"):
            series.update({name, name.removesuffix("_total") + "_created"})
            continue
        series.update(name + suffix for suffix in suffixes.get(kind, ("",)))
    return series
