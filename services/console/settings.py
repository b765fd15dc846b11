"""Settings of the console (prefix ``CITYDESK_CONSOLE_``): where the five services answer
and how the sign-in cookie is set."""

from __future__ import annotations

from pydantic import Field

from shared.settings import Settings, specialise


class ConsoleSettings(Settings):
    service_name: str = "console"
    console_submission_url: str = "http://127.0.0.1:8101"
    console_media_url: str = "http://127.0.0.1:8102"
    console_review_url: str = "http://127.0.0.1:8103"
    console_scoring_url: str = "http://127.0.0.1:8104"
    console_sentiment_url: str = "http://127.0.0.1:8105"
    console_timeout_seconds: float = Field(default=15.0, gt=0)
    # uploads stream through to the media service; videos may take a while
    console_upload_timeout_seconds: float = Field(default=300.0, gt=0)
    # how long a new story waits for the media service to announce its photos
    console_media_wait_seconds: float = Field(default=10.0, ge=0)
    # set behind HTTPS so the token cookie never travels in clear text
    console_cookie_secure: bool = False
    # the address people type, when a proxy in front changes the Host header: forms
    # posted from this origin are the console's own
    console_public_origin: str | None = None
    # failed sign-ins allowed before a wait (``limits`` notation: N per second/minute/hour)
    console_signin_failures_per_client: str = "10/minute"
    console_signin_failures_per_subject: str = "5/minute"
    # where photos' short-lived links point (the media service's setting of the same name)
    media_s3_public_endpoint: str | None = None

    def image_origins(self) -> list[str]:
        """The object store's origin as the browser reaches it, for the pages' CSP."""
        endpoint = self.media_s3_public_endpoint or self.s3_endpoint
        if "://" in endpoint:
            return [endpoint.rstrip("/")]
        return [f"{'https' if self.s3_secure else 'http'}://{endpoint}"]


def console_settings(settings: Settings | None) -> ConsoleSettings:
    """Console settings from the environment, keeping every value ``settings`` holds."""
    return specialise(settings, ConsoleSettings)
