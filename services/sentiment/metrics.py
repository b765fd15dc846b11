"""The sentiment service's Prometheus metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from shared.events import Severity
from shared.observability import precreate
from shared.orgtree import OrgTree

ITEMS = Counter(
    "citydesk_sentiment_items_total",
    "Public-opinion items analysed, by county and verdict.",
    ["county", "negative"],
)
ALERTS_OPEN = Gauge(
    "citydesk_sentiment_alerts_open", "Alerts not yet closed, by severity.", ["severity"]
)
ALERTS_ESCALATED = Counter(
    "citydesk_sentiment_alerts_escalated_total",
    "Alerts handed one level up after their deadline passed unacknowledged.",
    ["to_level"],
)
CLASSIFY_SECONDS = Histogram(
    "citydesk_sentiment_classify_seconds",
    "Time to analyse one text (both cascade stages when the second runs).",
    # measured up to 4.9 s for a long /classify on a busy machine
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
INCIDENTS = Counter(
    "citydesk_sentiment_incidents_total", "Incidents opened, by county.", ["county"]
)
SCREENINGS = Counter(
    "citydesk_sentiment_screenings_total",
    "Submitted stories screened, by whether they were flagged.",
    ["flagged"],
)
WEBHOOK_DELIVERIES = Counter(
    "citydesk_sentiment_webhook_deliveries_total",
    "Webhook notification attempts, by outcome (delivered, retry, failed).",
    ["outcome"],
)


def prime_metrics(org: OrgTree) -> None:
    """Every known label value at zero, so the first escalation is an increase."""
    counties = [unit.code for unit in org.counties()]
    precreate(ITEMS, county=counties, negative=["true", "false"])
    precreate(INCIDENTS, county=counties)
    precreate(ALERTS_ESCALATED, to_level=["county", "city"])
    precreate(SCREENINGS, flagged=["true", "false"])
    precreate(WEBHOOK_DELIVERIES, outcome=["delivered", "retry", "failed"])
    precreate(ALERTS_OPEN, severity=[s.value for s in Severity])
