"""The rules a bureau tunes (threshold, lexicons, severities, deadlines): where they are
kept, and how the model's analysis becomes a verdict under them."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from services.sentiment.classifier import Analysis
from services.sentiment.metrics import CLASSIFY_SECONDS
from services.sentiment.models import SentimentConfig, Verdict
from services.sentiment.runtime import Sentiment
from services.sentiment.settings import SentimentSettings
from shared.configstore import CONFIG, ConfigStore, read_yaml
from shared.events import Severity

CONFIG_FILE = Path(__file__).parent / "config.yaml"
CONFIG_KEY = "sentiment"


def read_config_file(path: str | Path | None = None) -> SentimentConfig:
    """The shipped rules, or a bureau's own file."""
    return read_yaml(SentimentConfig, Path(path) if path else CONFIG_FILE)


def config_store(settings: SentimentSettings) -> ConfigStore[SentimentConfig]:
    """The rules: seeded from the file, then MongoDB's, refreshed in every process."""
    return ConfigStore(
        SentimentConfig,
        key=CONFIG_KEY,
        seed=lambda: read_config_file(settings.sentiment_config_file),
    )


async def seed_config(*, runtime: Sentiment) -> None:
    """Rules stored before the shared store kept them under ``rules``: moved to ``value``
    once, then the file seeds an empty database and the stored rules are read."""
    stored = runtime.db[CONFIG]
    old = await stored.find_one({"_id": CONFIG_KEY, "value": {"$exists": False}})
    if old is not None and "rules" in old:
        await stored.update_one(
            {"_id": CONFIG_KEY, "value": {"$exists": False}},
            {"$set": {"value": old["rules"], "version": 1}, "$unset": {"rules": ""}},
        )
    await runtime.rules.seed(runtime.db)


async def reload_config(*, runtime: Sentiment) -> SentimentConfig:
    """Read the stored rules now (another replica may have replaced them)."""
    return await runtime.rules.get(runtime.db)


async def replace_config(*, runtime: Sentiment, config: SentimentConfig, by: str) -> None:
    """Store new rules and use them at once; other processes take them on their next
    refresh."""
    await runtime.rules.replace(runtime.db, config, by=by)


def max_severity(*severities: Severity) -> Severity:
    return max(severities, key=lambda s: s.rank)


def apply_rules(
    *, config: SentimentConfig, analysis: Analysis, source: str | None = None
) -> Verdict:
    """Threshold, severity keywords and sources, topic lexicon and sensitive words."""
    text = analysis.text
    negative = analysis.score >= config.negative_threshold
    severity = Severity.BLUE
    hits: list[str] = []
    if negative:
        for level, words in config.item_severity.keywords.items():
            found = [word for word in words if word in text]
            if found:
                hits += found
                severity = max_severity(severity, level)
        for level, sources in config.item_severity.sources.items():
            if source in sources:
                severity = max_severity(severity, level)
    topic_scores = dict(analysis.topic_scores)
    for topic, words in config.topics.items():
        matched = sum(word in text for word in words)
        if matched:
            topic_scores[topic] = topic_scores.get(topic, 0.0) + config.lexicon_weight * matched
    topic = max(topic_scores, key=topic_scores.__getitem__)
    explanation = list(analysis.terms)
    explanation += [word for word in hits if word not in explanation]
    return Verdict(
        negative=negative,
        score=round(min(1.0, max(0.0, analysis.score)), 4),
        severity=severity,
        topic=topic,
        explanation=explanation,
        sensitive_words=[word for word in config.sensitive_words if word in text],
        stage=analysis.stage,
    )


async def classify(*, runtime: Sentiment, text: str, source: str | None = None) -> Verdict:
    """Analyse one text."""
    verdicts = await classify_many(runtime=runtime, texts=[text], sources=[source], refine=True)
    return verdicts[0]


async def classify_many(
    *, runtime: Sentiment, texts: list[str], sources: list[str | None], refine: bool
) -> list[Verdict]:
    """Analyse a batch in one call, in a worker thread so the event loop keeps serving:
    the linear stage for every text and, when ``refine``, one embedding call for those in
    the uncertain band."""
    model = runtime.model
    started = time.perf_counter()
    analyses = await asyncio.to_thread(model.analyse_many if refine else model.linear_many, texts)
    per_text = (time.perf_counter() - started) / max(1, len(texts))
    for _ in texts:
        CLASSIFY_SECONDS.observe(per_text)
    config = runtime.config
    return [
        apply_rules(config=config, analysis=analysis, source=source)
        for analysis, source in zip(analyses, sources, strict=True)
    ]
