"""Settings of the scoring service beyond the shared ones (prefix ``CITYDESK_``)."""

from __future__ import annotations

from datetime import date

from shared.settings import Settings, specialise


class ScoringSettings(Settings):
    service_name: str = "scoring"
    # the day the deployment started using the desk (上线日期): quotas and deductions count
    # whole months from then on; unset, the month of the first event the ledger holds
    scoring_go_live: date | None = None
    # what a bureau publishes anyway: rankings and the zero-submission list are open to
    # every signed-in unit; incident details and veto causes stay in the caller's scope
    scoring_rankings_public: bool = True
    # the issuing office printed on a bulletin (default: the city bureau's own name)
    scoring_issuer: str | None = None


def scoring_settings(settings: Settings | None) -> ScoringSettings:
    """The scoring settings, keeping every value of ``settings`` (overrides included)."""
    return specialise(settings, ScoringSettings)
