"""Settings of the review service beyond the shared ones (prefix ``CITYDESK_``)."""

from __future__ import annotations

from pydantic import Field

from shared.settings import Settings


class ReviewSettings(Settings):
    service_name: str = "review"
    # links in the queue, the feed and webhook bodies point at the media service
    media_public_url: str = "http://127.0.0.1:8102"
    # where this service's public feed is reachable (item links in RSS/Atom)
    review_public_url: str = "http://127.0.0.1:8103"
    # the review routes, deadlines, screening hold and channels seeded into MongoDB
    review_config_file: str | None = None
    overdue_check_seconds: float = Field(default=60.0, gt=0)
    publish_poll_seconds: float = Field(default=1.0, gt=0)
    publish_workers: int = Field(default=4, ge=1)
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)


def review_settings(settings: Settings | None) -> ReviewSettings:
    """The review settings, keeping every value of ``settings`` (overrides included)."""
    if isinstance(settings, ReviewSettings):
        return settings
    if settings is None:
        return ReviewSettings()
    return ReviewSettings(**dict(vars(settings)))
