"""The review service's foundations: its name, its collections and their indexes, and
the review configuration (routes, deadlines, the screening hold, channels) in MongoDB.

The work itself lives beside this module, one seam each: ``cases`` (opening and reading
cases), ``access`` (who may act where), ``decisions``, ``audit``, ``overdue``,
``delivery`` (the publish queue) and ``office`` (the city office's actions)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from services.review.models import ReviewConfig
from services.review.refused import invalid, not_found
from services.review.settings import ReviewSettings
from shared.events import utcnow
from shared.runtime import ServiceRuntime

SERVICE = "review"
CONFIG = "config"
CASES = "cases"
AUDIT = "audit"
SCREENINGS = "screenings"
PUBLICATIONS = "publications"
FEED = "feed"
ADOPTIONS = "adoptions"
CONFIG_ID = "review"
DEFAULT_CONFIG_FILE = Path(__file__).parent / "config.yaml"


def settings_of(runtime: ServiceRuntime) -> ReviewSettings:
    """The review settings the app was built with (``app.create_app`` promotes them)."""
    settings = runtime.settings
    if not isinstance(settings, ReviewSettings):
        raise TypeError("the review service runs with ReviewSettings")
    return settings


async def ensure_indexes(runtime: ServiceRuntime) -> None:
    """Every index of the service; each list route's filter and sort is served by one."""
    db = runtime.db
    await db[CASES].create_index([("story_id", ASCENDING), ("version", ASCENDING)], unique=True)
    await db[CASES].create_index([("state", ASCENDING), ("level", ASCENDING), ("waiting_since", 1)])
    await db[AUDIT].create_index([("story_id", ASCENDING), ("at", ASCENDING)])
    await db[SCREENINGS].create_index([("story_id", ASCENDING), ("flagged_at", DESCENDING)])
    await db[PUBLICATIONS].create_index(
        [("story_id", 1), ("version", 1), ("channel", 1), ("action", 1)], unique=True
    )
    await db[PUBLICATIONS].create_index([("state", ASCENDING), ("next_attempt_at", ASCENDING)])
    await db[FEED].create_index([("state", ASCENDING), ("published_at", DESCENDING)])
    await db[ADOPTIONS].create_index(
        [("story_id", ASCENDING), ("outlet_key", ASCENDING)], unique=True
    )


async def find_case(*, db: AsyncDatabase[dict[str, Any]], case_id: str) -> dict[str, Any]:
    case = await db[CASES].find_one({"_id": case_id})
    if case is None:
        raise not_found("未找到该审核稿件", f"no review case {case_id!r}")
    return case


async def latest_case(db: AsyncDatabase[dict[str, Any]], story_id: str) -> dict[str, Any]:
    """The case of the story's newest version; 404 for a story never reviewed here."""
    case = await db[CASES].find_one({"story_id": story_id}, sort=[("version", DESCENDING)])
    if case is None:
        raise not_found("未找到该稿件的审核记录", f"no story {story_id!r} under review")
    return case


# ---- configuration ------------------------------------------------------------------
async def seed_config(runtime: ServiceRuntime) -> None:
    """Load the YAML configuration into MongoDB unless an administrator replaced it."""
    settings = settings_of(runtime)
    path = Path(settings.review_config_file) if settings.review_config_file else DEFAULT_CONFIG_FILE
    config = ReviewConfig.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    await runtime.db[CONFIG].update_one(
        {"_id": CONFIG_ID},
        {"$setOnInsert": {**config.model_dump(mode="json"), "updated_at": utcnow()}},
        upsert=True,
    )


async def load_config(*, db: AsyncDatabase[dict[str, Any]]) -> ReviewConfig:
    """The review configuration in force."""
    doc = await db[CONFIG].find_one({"_id": CONFIG_ID}, projection={"_id": 0, "updated_at": 0})
    if doc is None:
        raise RuntimeError("the review configuration is missing; it is seeded on startup")
    return ReviewConfig.model_validate(doc)


async def replace_config(
    *, db: AsyncDatabase[dict[str, Any]], config: ReviewConfig
) -> ReviewConfig:
    """Replace the configuration; a webhook given without a secret keeps its stored one."""
    current = await load_config(db=db)
    hooks = []
    for hook in config.publication.webhooks:
        if hook.secret is None:
            stored = current.webhook(hook.name)
            if stored is None or stored.secret is None:
                raise invalid(
                    f"推送渠道“{hook.name}”需要填写签名密钥",
                    f"webhook {hook.name!r} needs a secret",
                )
            hook = hook.model_copy(update={"secret": stored.secret})
        hooks.append(hook)
    publication = config.publication.model_copy(update={"webhooks": hooks})
    config = config.model_copy(update={"publication": publication})
    await db[CONFIG].replace_one(
        {"_id": CONFIG_ID}, {**config.model_dump(mode="json"), "updated_at": utcnow()}, upsert=True
    )
    return config
