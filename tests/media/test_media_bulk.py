"""Records of files already stored, loaded in bulk (a migration, the decade benchmark):
the live record of each file, listed like uploaded ones, a page at a time without a
duplicate or a gap, each unit's in its own scope; loading them again adds nothing."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.media.bulk import import_media
from services.media.context import MediaRuntime
from shared import events as ev
from shared.auth import Role
from shared.orgtree import example_city
from tests.support import RunningService, auth, run_service

pytestmark = pytest.mark.usefixtures("stack_env")
FILES = 1_200
# two years of moments, fewer than the files: a quarter of them share one
_START, _RNG = datetime(2024, 9, 1, tzinfo=UTC), random.Random(3)
MOMENTS = [_START + timedelta(minutes=_RNG.randint(0, 2 * 365 * 24 * 60)) for _ in range(900)]


@pytest.fixture(scope="module")
async def media() -> AsyncIterator[RunningService]:
    async with run_service("media", mongo_database=f"media_bulk_{uuid.uuid4().hex[:8]}") as svc:
        yield svc


def past_files() -> list[ev.MediaStored]:
    """Photos of every school over two years, a quarter of them sharing a moment."""
    org, rng = example_city(), random.Random(7)
    schools = [unit.code for unit in org.schools()]
    return [photo(org.path(rng.choice(schools)), rng) for _ in range(FILES)]


def photo(path: ev.UnitPath, rng: random.Random) -> ev.MediaStored:
    return ev.MediaStored(
        media_id=uuid.uuid4().hex, unit_path=path, kind=ev.MediaKind.PHOTO,
        content_type="image/jpeg", size=rng.randint(200_000, 4_000_000),
        sha256=uuid.uuid4().hex * 2, campaign=None, uploader=path.unit, width=4032,
        height=3024, stored_at=rng.choice(MOMENTS),
    )  # fmt: skip


async def all_pages(media: RunningService, unit: str, role: Role) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 200}
    while True:
        answer = await media.client.get("/media", params=params, headers=auth(unit, role))
        assert answer.status_code == 200, answer.text
        page = answer.json()
        seen += page["items"]
        if not page["next_cursor"]:
            return seen
        params["cursor"] = page["next_cursor"]


async def test_files_loaded_in_bulk_are_listed_like_uploaded_ones(media: RunningService) -> None:
    runtime: MediaRuntime = media.app.state.media
    files = past_files()
    assert await import_media(runtime=runtime, files=files) == FILES
    assert await import_media(runtime=runtime, files=files) == 0  # already recorded

    stored_at = {f.media_id: f.stored_at for f in files}
    listed = await all_pages(media, "jc", Role.REVIEWER_CITY)
    ids = [item["id"] for item in listed]
    assert len(ids) == len(set(ids)) == FILES and set(ids) == set(stored_at)
    moments = [stored_at[i] for i in ids]
    assert moments == sorted(moments, reverse=True)  # newest first
    first = listed[0]
    assert first["thumbnails"]["small"]["width"] == 160 and first["width"] == 4032

    org = example_city()
    county = await all_pages(media, "dh", Role.REVIEWER_COUNTY)
    assert {item["id"] for item in county} == {
        f.media_id for f in files if org.contains("dh", f.unit_path.unit)
    }
    school = files[0].unit_path.unit
    own = await all_pages(media, school, Role.CORRESPONDENT)
    assert {item["id"] for item in own} == {f.media_id for f in files if f.unit_path.unit == school}
