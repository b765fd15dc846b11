"""The review service's foundations: its name, its collections and their indexes, and
the review configuration (routes, deadlines, the screening hold, channels) in MongoDB.

The work itself lives beside this module, one seam each: ``cases`` (opening and reading
cases), ``access`` (who may act where), ``decisions``, ``audit``, ``overdue``,
``delivery`` (the publish queue and its workers), ``publications`` (the queue as the
office sees it), ``office`` (the city office's actions) and ``feeds``."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure

from services.review.models import ReviewConfig
from services.review.refused import invalid, not_found
from services.review.runtime import Review
from services.review.settings import ReviewSettings
from shared.configstore import ConfigStore, read_yaml
from shared.outbound import check_target

SERVICE = "review"
CASES = "cases"
AUDIT = "audit"
SCREENINGS = "screenings"
PUBLICATIONS = "publications"
FEED = "feed"
ADOPTIONS = "adoptions"
CONFIG_ID = "review"  # the document of the kit's config collection
DEFAULT_CONFIG_FILE = Path(__file__).parent / "config.yaml"


async def ensure_indexes(*, runtime: Review) -> None:
    """Every index of the service but the publish queue's own (``delivery.ensure_queue``):
    each list route's filter and sort is served by one, ending in ``_id`` for keyset pages."""
    db = runtime.db
    await db[CASES].create_index([("story_id", ASCENDING), ("version", ASCENDING)], unique=True)
    for scope in ([], ["unit_path.unit"], ["unit_path.county"]):
        # the queue: a level's open cases, of a school, of a county's schools, or all
        await db[CASES].create_index(_keys("state", "level", *scope, *OLDEST))
        # the overdue list, in the same three scopes
        await db[CASES].create_index(_keys("state", "overdue", *scope, *OLDEST))
    with contextlib.suppress(OperationFailure):
        await db[CASES].drop_index("state_1_level_1_waiting_since_1")  # the queue's before pages
    await db[AUDIT].create_index(_keys("story_id", "at", "_id"))
    await db[SCREENINGS].create_index([("story_id", ASCENDING), ("flagged_at", DESCENDING)])
    await db[PUBLICATIONS].create_index(
        [("story_id", 1), ("version", 1), ("channel", 1), ("action", 1)], unique=True
    )
    for scope in ([], ["state"], ["story_id"]):
        # the office's list, newest first in time windows (``shared.windows``)
        await db[PUBLICATIONS].create_index(_keys(*scope, "-created_at", "_id"))
    await db[FEED].create_index(_keys("state", "-published_at", "_id"))
    await db[ADOPTIONS].create_index(
        [("story_id", ASCENDING), ("outlet_key", ASCENDING)], unique=True
    )
    await db[ADOPTIONS].create_index(_keys("-recorded_at", "_id"))
    await db[ADOPTIONS].create_index(_keys("story_id", "recorded_at", "_id"))
    for collection, name in RETIRED_INDEXES:
        with contextlib.suppress(OperationFailure):  # already gone
            await db[collection].drop_index(name)


# newest-first lists ordered ties by descending id before they were read in time windows
RETIRED_INDEXES = (
    (PUBLICATIONS, "created_at_-1__id_-1"),
    (PUBLICATIONS, "state_1_created_at_-1__id_-1"),
    (PUBLICATIONS, "story_id_1_created_at_-1__id_-1"),
    (FEED, "state_1_published_at_-1__id_-1"),
    (ADOPTIONS, "recorded_at_-1__id_-1"),
)

OLDEST = ("waiting_since", "_id")


def _keys(*fields: str) -> list[tuple[str, int]]:
    """Index keys from field names, ``-name`` descending."""
    return [(f[1:], DESCENDING) if f.startswith("-") else (f, ASCENDING) for f in fields]


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
def config_store(settings: ReviewSettings) -> ConfigStore[ReviewConfig]:
    """The review configuration: seeded from the file, then MongoDB's, refreshed in every
    process (documents stored before the store existed are read as they are)."""
    path = Path(settings.review_config_file) if settings.review_config_file else DEFAULT_CONFIG_FILE
    return ConfigStore(ReviewConfig, key=CONFIG_ID, seed=lambda: read_yaml(ReviewConfig, path))


async def seed_config(*, runtime: Review) -> None:
    """Store the file's configuration unless one is stored, then read what is stored."""
    await runtime.store.seed(runtime.db)


async def replace_config(*, runtime: Review, config: ReviewConfig, by: str) -> ReviewConfig:
    """Replace the configuration; a webhook given without a secret keeps its stored one,
    and a webhook pointing inside the network is refused unless the deployment allows it."""
    current = await runtime.store.get(runtime.db)
    hooks = []
    for hook in config.publication.webhooks:
        await check_target(str(hook.url), runtime.settings.review_webhook_allow)
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
    return await runtime.store.replace(runtime.db, config, by=by)
