"""Settings only the sentiment service reads (``CITYDESK_SENTIMENT_*``)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from shared.settings import Settings, specialise


class SentimentSettings(Settings):
    service_name: str = "sentiment"
    # how often unacknowledged alerts past their deadline are escalated
    sentiment_escalation_poll_seconds: float = Field(default=5.0, gt=0)
    # how often the open-alert gauges are refreshed from the database
    sentiment_gauge_refresh_seconds: float = Field(default=15.0, gt=0)
    # how often every process re-reads the rules an admin may have replaced
    sentiment_config_refresh_seconds: float = Field(default=5.0, gt=0)
    # a system's webhook: every alert change POSTed as JSON, signed the Standard Webhooks way
    sentiment_webhook_url: str | None = None
    sentiment_webhook_secret: SecretStr | None = None
    # pushes to people and systems: attempts before giving up, first backoff (doubling),
    # how often the delivery job runs, and hosts or networks allowed although not public
    # (an intranet mail relay); loopback, private and metadata addresses are refused else
    sentiment_webhook_max_attempts: int = Field(default=8, ge=1)
    sentiment_push_backoff_seconds: float = Field(default=5.0, ge=0)
    sentiment_webhook_poll_seconds: float = Field(default=1.0, gt=0)
    sentiment_push_allow: list[str] = Field(default_factory=list)
    # recipients of push alerts: a bureau's own file instead of the shipped push.yaml
    sentiment_push_file: str | None = None
    # e-mail alerts go through this SMTP server (none: e-mail channels wait, recorded)
    sentiment_smtp_host: str | None = None
    sentiment_smtp_port: int = Field(default=25, ge=1, le=65535)
    sentiment_smtp_starttls: bool = False
    sentiment_smtp_user: str | None = None
    sentiment_smtp_password: SecretStr | None = None
    sentiment_smtp_sender: str = "citydesk-alerts@localhost"
    # the console's address, for the link to an alert in pushes (none: no link)
    sentiment_console_url: str | None = None
    # the embedding stage of the cascade (off: linear model only)
    sentiment_use_embeddings: bool = True
    # the embedding stage for intake batches too (off: the linear stage alone there; on
    # the held-out split both give the same precision and recall, and the embedding call
    # costs about a third of a batch's time on 2 cores); ad-hoc analysis and story
    # screening use the whole cascade either way
    sentiment_intake_embeddings: bool = False
    # a bureau's own rules instead of the shipped config.yaml (seeded when absent)
    sentiment_config_file: str | None = None


def sentiment_settings(settings: Settings | None) -> SentimentSettings:
    """Promote shared settings (with any overrides they carry) to the service's own."""
    return specialise(settings, SentimentSettings)
