"""The chart's Grafana dashboards, rendered to PNG from a Prometheus' answers to their own
queries: what an operator will see in Grafana, without Grafana (it is not installable
here). Each dashboard becomes one image, its panels in a grid in the dashboard's order."""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

DASHBOARDS_DIR = Path(__file__).resolve().parents[1] / "deploy" / "helm" / "citydesk" / "dashboards"
_LEGEND = re.compile(r"\{\{\s*(\w+)\s*\}\}")
MAX_LINES = 10
# what an operator looks at first on each board (by dashboard uid, in the board's order);
# ``all_panels`` renders every panel instead
KEY_PANELS: dict[str, tuple[str, ...]] = {
    "citydesk-operations": (
        "Ready, per service",
        "Outbox pending",
        "Events handled/s by service",
        "Consumer lag (top 10)",
        "Dead-lettered events",
        "Redeliveries (stalled or looping consumers)",
        "Handler latency p95 by service",
        "HTTP 5xx ratio (probes and scrapes excluded)",
        "Request latency (probes and scrapes excluded)",
    ),
    "citydesk-business": (
        "Stories submitted per county per day",
        "Oldest story waiting, by level",
        "Review decisions per day",
        "Publications per day by channel",
        "Open opinion alerts by severity",
        "Unacknowledged alerts past deadline, by owner level",
        "Alerts escalated per day",
        "Classification latency",
        "Points awarded per county per day",
    ),
}


@dataclass
class Series:
    labels: dict[str, str]
    times: list[float]
    values: list[float]


@dataclass
class Panel:
    title: str
    kind: str
    unit: str
    exprs: list[str]
    legends: list[str]
    series: list[Series] = field(default_factory=list)


def panels_of(dashboard: dict[str, Any]) -> list[Panel]:
    """The dashboard's panels that query something, rows flattened, in order."""
    found: list[Panel] = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for panel in panels:
            walk(panel.get("panels", []))
            targets = [t for t in panel.get("targets", []) if t.get("expr")]
            if not targets:
                continue
            found.append(
                Panel(
                    title=panel["title"],
                    kind=panel["type"],
                    unit=panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "short"),
                    exprs=[t["expr"] for t in targets],
                    legends=[t.get("legendFormat", "") for t in targets],
                )
            )

    walk(dashboard.get("panels", []))
    return found


def concrete(expr: str, variables: dict[str, str], rate_interval: str) -> str:
    """``expr`` with Grafana's variables put in (``$__rate_interval`` and the dashboard's)."""
    text = expr.replace("$__rate_interval", rate_interval)
    for name, value in sorted(variables.items(), key=lambda item: -len(item[0])):
        text = text.replace("${" + name + "}", value).replace("$" + name, value)
    return text


def default_variables(dashboard: dict[str, Any]) -> dict[str, str]:
    """Every query variable at "All" (``.*``), as Grafana opens a dashboard."""
    return {
        variable["name"]: variable.get("allValue", ".*")
        for variable in dashboard.get("templating", {}).get("list", [])
        if variable.get("type") == "query"
    }


def query_range(
    client: httpx.Client, prometheus: str, expr: str, start: float, end: float, step: float
) -> list[Series]:
    response = client.get(
        f"{prometheus}/api/v1/query_range",
        params={"query": expr, "start": start, "end": end, "step": step},
    )
    response.raise_for_status()
    body = response.json()
    return [
        Series(
            labels=item["metric"],
            times=[float(t) for t, _ in item["values"]],
            values=[float(v) for _, v in item["values"]],
        )
        for item in body["data"]["result"]
    ]


def fetch(
    dashboard: dict[str, Any],
    prometheus: str,
    *,
    start: float,
    end: float,
    step: float = 5.0,
    rate_interval: str = "1m",
    variables: dict[str, str] | None = None,
    all_panels: bool = False,
) -> list[Panel]:
    """Each panel with the series its queries return over ``start``..``end``."""
    chosen = {**default_variables(dashboard), **(variables or {})}
    panels = panels_of(dashboard)
    if not all_panels:
        key = KEY_PANELS.get(dashboard.get("uid", ""), ())
        panels = [panel for panel in panels if panel.title in key] or panels
    with httpx.Client(timeout=30) as client:
        for panel in panels:
            for expr, legend in zip(panel.exprs, panel.legends, strict=True):
                for series in query_range(
                    client, prometheus, concrete(expr, chosen, rate_interval), start, end, step
                ):
                    series.labels = {"__legend__": _legend(legend, series.labels)}
                    panel.series.append(series)
    return panels


def _legend(template: str, labels: dict[str, str]) -> str:
    if not template:
        return ", ".join(f"{k}={v}" for k, v in labels.items() if k != "__name__") or "value"
    return _LEGEND.sub(lambda m: labels.get(m.group(1), ""), template).strip()


def _last(values: list[float]) -> float:
    return next((value for value in reversed(values) if not math.isnan(value)), 0.0)


def render(title: str, panels: list[Panel], out: Path, *, origin: float, columns: int = 3) -> Path:
    """One PNG: the panels in a grid, time series as lines (minutes since ``origin``),
    stats as bars of the last value."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = max(1, math.ceil(len(panels) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(6.2 * columns, 3.3 * rows), squeeze=False)
    figure.suptitle(title, fontsize=16, fontweight="bold")
    for index, axis in enumerate(axes.flat):
        if index >= len(panels):
            axis.axis("off")
            continue
        panel = panels[index]
        axis.set_title(panel.title, fontsize=10, loc="left")
        axis.tick_params(labelsize=7)
        # the busiest lines first: a panel of twenty zero lines hides the one that moved
        shown = sorted(
            (s for s in panel.series if any(not math.isnan(v) for v in s.values)),
            key=lambda s: -max((v for v in s.values if not math.isnan(v)), default=0.0),
        )
        if not panel.series:
            axis.text(0.5, 0.5, "No data", ha="center", va="center", color="grey")
            continue
        if panel.kind == "stat":
            names = [s.labels["__legend__"] for s in panel.series]
            last = [_last(series.values) for series in panel.series]
            axis.barh(names, last, color="#3274d9")
            for y, value in enumerate(last):
                axis.text(value, y, f" {value:g}", va="center", fontsize=8)
            continue
        for series in shown[:MAX_LINES]:
            minutes = [(t - origin) / 60 for t in series.times]
            axis.plot(minutes, series.values, linewidth=1.2, label=series.labels["__legend__"])
        if not shown:
            axis.text(0.5, 0.5, "no samples yet (NaN)", ha="center", va="center", color="grey")
        axis.set_xlim(left=0)
        axis.set_xlabel("minutes", fontsize=7)
        axis.set_ylabel(panel.unit if panel.unit != "short" else "", fontsize=7)
        if shown:
            axis.legend(fontsize=6, loc="upper left", ncol=2, frameon=False)
        axis.grid(alpha=0.3)
    # fixed margins: tight_layout measured every label and took longer than the drawing
    top = 1 - 0.9 / figure.get_figheight()
    figure.subplots_adjust(left=0.06, right=0.98, top=top, bottom=0.05, hspace=0.5, wspace=0.2)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=80)
    plt.close(figure)
    return out


def render_all(
    prometheus: str,
    out_dir: Path,
    *,
    minutes: float = 30.0,
    end: float | None = None,
    step: float = 5.0,
    rate_interval: str = "1m",
    all_panels: bool = False,
) -> list[Path]:
    """Both dashboards' key panels (or all) over the last ``minutes`` of ``prometheus``,
    as PNGs in ``out_dir``."""
    end = end or time.time()
    start = end - minutes * 60
    written = []
    for path in sorted(DASHBOARDS_DIR.glob("*.json")):
        dashboard = json.loads(path.read_text())
        panels = fetch(
            dashboard,
            prometheus,
            start=start,
            end=end,
            step=step,
            rate_interval=rate_interval,
            all_panels=all_panels,
        )
        written.append(
            render(dashboard["title"], panels, out_dir / f"{path.stem}.png", origin=start)
        )
    return written
