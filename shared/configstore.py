"""Configuration an administrator can change at run time, one way in every service.

A YAML file shipped with the service (or a bureau's own, named in settings) seeds the
value into MongoDB on first start; from then on MongoDB is the truth. Each replace bumps
a version; every process that reads the value — API pods and workers alike — keeps a
cached copy and refreshes it when the stored version moves (a cheap read of one field),
so a change applies everywhere within the refresh interval and at once in the process
that made it.

Stored as one document per key: ``{_id, value, version, updated_at, updated_by}``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

import yaml
from pydantic import BaseModel
from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shared.clock import utcnow
from shared.jobs import Job, every

M = TypeVar("M", bound=BaseModel)
Db = AsyncDatabase[dict[str, Any]]

CONFIG = "config"
# fields of the stored document that are not the value (documents written before the
# store kept the value at the top level)
_META = {"_id", "value", "version", "updated_at", "updated_by"}


def read_yaml(model: type[M], path: Path, *, section: str | None = None) -> M:
    """A model from a YAML file (or one top-level section of it)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return model.model_validate(data[section] if section else data)


class ConfigStore(Generic[M]):
    """One configuration value of type ``model`` under ``key``."""

    def __init__(
        self,
        model: type[M],
        *,
        key: str,
        seed: Callable[[], M],
        collection: str = CONFIG,
    ) -> None:
        self.model = model
        self.key = key
        self._seed = seed
        self.collection = collection
        self._value: M | None = None
        self.version = 0

    @property
    def current(self) -> M:
        """The value this process last read (the seed before the first read)."""
        if self._value is None:
            self._value = self._seed()
        return self._value

    def _take(self, doc: dict[str, Any]) -> M:
        raw = doc["value"] if "value" in doc else {k: v for k, v in doc.items() if k not in _META}
        self._value = self.model.model_validate(raw)
        self.version = int(doc.get("version", 1))
        return self._value

    async def seed(self, db: Db) -> M:
        """Store the seed unless a value is stored already, then read what is stored."""
        try:
            await db[self.collection].insert_one(
                {
                    "_id": self.key,
                    "value": self._seed().model_dump(mode="json"),
                    "version": 1,
                    "updated_at": utcnow(),
                    "updated_by": "seed",
                }
            )
        except DuplicateKeyError:
            pass
        return await self.get(db)

    async def get(self, db: Db) -> M:
        """The stored value (read now, and cached for :attr:`current`)."""
        doc = await db[self.collection].find_one({"_id": self.key})
        return self._seed() if doc is None else self._take(doc)

    async def replace(self, db: Db, value: M, *, by: str) -> M:
        """Store ``value`` as the next version; this process uses it at once."""
        doc = await db[self.collection].find_one_and_update(
            {"_id": self.key},
            {
                "$set": {
                    "value": value.model_dump(mode="json"),
                    "updated_at": utcnow(),
                    "updated_by": by,
                },
                "$inc": {"version": 1},
            },
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:  # an upsert returning the document after it never answers None
            raise RuntimeError(f"config {self.key!r} was not stored")
        return self._take(doc)

    async def refresh(self, db: Db) -> bool:
        """Re-read the value when its stored version moved; True when it changed."""
        stamp = await db[self.collection].find_one({"_id": self.key}, projection={"version": 1})
        if stamp is None or (self._value is not None and stamp.get("version", 1) == self.version):
            return False
        await self.get(db)
        return True

    def refresher(self, db: Db, seconds: float | Callable[[], float]) -> Job:
        """A background job keeping :attr:`current` fresh in this process."""

        async def refresh() -> None:
            await self.refresh(db)

        return every(seconds, refresh, name=f"refresh config {self.key}")

    async def updated(self, db: Db) -> dict[str, Any] | None:
        """Who changed the value last and when (for the admin page)."""
        projection = {"version": 1, "updated_at": 1, "updated_by": 1, "_id": 0}
        return await db[self.collection].find_one({"_id": self.key}, projection=projection)
