"""Settings of the review service beyond the shared ones (prefix ``CITYDESK_``)."""

from __future__ import annotations

from pydantic import Field

from shared.settings import Settings, specialise


class ReviewSettings(Settings):
    service_name: str = "review"
    # links in the queue, the feed and webhook bodies point at the media service
    media_public_url: str = "http://127.0.0.1:8102"
    # where this service's public feed is reachable (item links in RSS/Atom)
    review_public_url: str = "http://127.0.0.1:8103"
    # the review routes, deadlines, screening hold and channels seeded into MongoDB
    review_config_file: str | None = None
    # how soon a configuration replaced in another process is used in this one
    review_config_refresh_seconds: float = Field(default=5.0, gt=0)
    # webhook hosts or networks allowed although they are loopback, private or link-local
    # (a bureau's own portal inside its network; the local demo's receivers), e.g.
    # CITYDESK_REVIEW_WEBHOOK_ALLOW='["portal.jc.internal", "10.8.0.0/16"]'
    review_webhook_allow: list[str] = Field(default_factory=list)
    overdue_check_seconds: float = Field(default=60.0, gt=0)
    publish_poll_seconds: float = Field(default=1.0, gt=0)
    publish_workers: int = Field(default=4, ge=1)
    # how long a claimed delivery is a worker's before another may take it over
    publish_lease_seconds: float = Field(default=120.0, gt=0)
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)


def review_settings(settings: Settings | None) -> ReviewSettings:
    """The review settings, keeping every value of ``settings`` (overrides included)."""
    return specialise(settings, ReviewSettings)
