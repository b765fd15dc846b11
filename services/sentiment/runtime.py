"""What every part of the sentiment service works with: the process's service runtime,
its settings, the model, the rules in force and the clock, passed by keyword as
``runtime=``."""

from __future__ import annotations

from dataclasses import dataclass, field

from services.sentiment.classifier import SentimentModel
from services.sentiment.models import PushConfig, SentimentConfig
from services.sentiment.settings import SentimentSettings
from shared.clock import Clock, utcnow
from shared.configstore import ConfigStore
from shared.runtime import OnRuntime, ServiceRuntime

SERVICE = "sentiment"


@dataclass
class Sentiment(OnRuntime):
    """The model, the current rules and the service runtime, shared by handlers, routes
    and jobs."""

    base: ServiceRuntime
    settings: SentimentSettings
    model: SentimentModel
    rules: ConfigStore[SentimentConfig]
    # who receives push alerts (kept apart from the rules: it names people's channels)
    pushes: ConfigStore[PushConfig]
    # "now" for the pushes (quiet hours, when a delivery is due); tests move it to the
    # night and on to the morning. Alert deadlines keep real time.
    clock: Clock = field(default=utcnow)

    @property
    def config(self) -> SentimentConfig:
        """The rules in force in this process (refreshed by the store's job)."""
        return self.rules.current
