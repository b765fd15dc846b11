"""Categories and submission rules: seeded from ``config.yaml`` into MongoDB on first
start through the kit's config store, then read from there on every use so that an
admin's replacement applies to all replicas at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pymongo.asynchronous.database import AsyncDatabase

from services.submission.models import CategoryList, Rules
from shared.configstore import ConfigStore
from shared.contracts import IntakeRules

Db = AsyncDatabase[dict[str, Any]]
SEED_FILE = Path(__file__).parent.parent / "config.yaml"


def read_seed(path: Path = SEED_FILE) -> tuple[CategoryList, Rules]:
    """The shipped defaults."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return CategoryList(categories=data["categories"]), Rules(**data["rules"])


CATEGORIES = ConfigStore(CategoryList, key="categories", seed=lambda: read_seed()[0])
RULES = ConfigStore(Rules, key="rules", seed=lambda: read_seed()[1])


async def seed_config(db: Db) -> None:
    """Write the shipped defaults where no configuration exists yet."""
    await CATEGORIES.seed(db)
    await RULES.seed(db)


async def get_categories(*, db: Db) -> CategoryList:
    """The categories a story may be filed under."""
    return await CATEGORIES.get(db)


async def get_rules(*, db: Db) -> Rules:
    """Length bounds, the late threshold and the copy-detection settings."""
    return await RULES.get(db)


async def replace_categories(*, db: Db, categories: CategoryList, by: str) -> CategoryList:
    """Replace the whole category list; stories keep the category they were filed under."""
    return await CATEGORIES.replace(db, categories, by=by)


async def replace_rules(*, db: Db, rules: Rules, by: str) -> Rules:
    """Replace the submission rules; they apply to the next submission."""
    return await RULES.replace(db, rules, by=by)


async def get_config(*, db: Db) -> tuple[CategoryList, Rules]:
    """Categories and rules (every submission checks both; read each time, since the
    stores' cached copies are per process and an admin may have changed them elsewhere)."""
    return await CATEGORIES.get(db), await RULES.get(db)


def category_names(categories: CategoryList) -> set[str]:
    return {category.name for category in categories.categories}


def intake_rules(categories: CategoryList, rules: Rules) -> IntakeRules:
    """What the intake contract's schema states of these categories and rules."""
    return IntakeRules(
        categories=[category.name for category in categories.categories],
        title_chars=(rules.title_min_chars, rules.title_max_chars),
        body_chars=(rules.body_min_chars, rules.body_max_chars),
    )
