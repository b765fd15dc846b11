"""Categories and submission rules: seeded from ``config.yaml`` into MongoDB on first
start, then read from there on every use so that an admin's replacement applies to all
replicas at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.submission.models import CategoryList, Rules
from shared.contracts import IntakeRules

CONFIG = "config"
SEED_FILE = Path(__file__).parent.parent / "config.yaml"


def read_seed(path: Path = SEED_FILE) -> tuple[CategoryList, Rules]:
    """The shipped defaults."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return CategoryList(categories=data["categories"]), Rules(**data["rules"])


async def seed_config(db: AsyncDatabase[dict[str, Any]]) -> None:
    """Write the shipped defaults where no configuration exists yet."""
    categories, rules = read_seed()
    for key, value in (("categories", categories), ("rules", rules)):
        try:
            await db[CONFIG].insert_one({"_id": key, **value.model_dump()})
        except DuplicateKeyError:
            continue


async def get_categories(*, db: AsyncDatabase[dict[str, Any]]) -> CategoryList:
    """The categories a story may be filed under."""
    doc = await db[CONFIG].find_one({"_id": "categories"}, projection={"_id": 0})
    return CategoryList(**doc) if doc else read_seed()[0]


async def get_rules(*, db: AsyncDatabase[dict[str, Any]]) -> Rules:
    """Length bounds, the late threshold and the copy-detection settings."""
    doc = await db[CONFIG].find_one({"_id": "rules"}, projection={"_id": 0})
    return Rules(**doc) if doc else read_seed()[1]


async def replace_categories(
    *, db: AsyncDatabase[dict[str, Any]], categories: CategoryList
) -> CategoryList:
    """Replace the whole category list; stories keep the category they were filed under."""
    await db[CONFIG].replace_one(
        {"_id": "categories"}, {"_id": "categories", **categories.model_dump()}, upsert=True
    )
    return categories


async def replace_rules(*, db: AsyncDatabase[dict[str, Any]], rules: Rules) -> Rules:
    """Replace the submission rules; they apply to the next submission."""
    await db[CONFIG].replace_one(
        {"_id": "rules"}, {"_id": "rules", **rules.model_dump()}, upsert=True
    )
    return rules


async def get_config(*, db: AsyncDatabase[dict[str, Any]]) -> tuple[CategoryList, Rules]:
    """Categories and rules in one read (every submission checks both)."""
    docs = {
        doc.pop("_id"): doc
        async for doc in db[CONFIG].find({"_id": {"$in": ["categories", "rules"]}})
    }
    categories = CategoryList(**docs["categories"]) if "categories" in docs else read_seed()[0]
    rules = Rules(**docs["rules"]) if "rules" in docs else read_seed()[1]
    return categories, rules


def category_names(categories: CategoryList) -> set[str]:
    return {category.name for category in categories.categories}


def intake_rules(categories: CategoryList, rules: Rules) -> IntakeRules:
    """What the intake contract's schema states of these categories and rules."""
    return IntakeRules(
        categories=[category.name for category in categories.categories],
        title_chars=(rules.title_min_chars, rules.title_max_chars),
        body_chars=(rules.body_min_chars, rules.body_max_chars),
    )
