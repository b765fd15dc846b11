"""The media list as the years pile up, over the real local servers: a scope is one
equality (the city none, a county its ``unit_path.county``, a school its unit), the pages
are read newest first in time windows, every shape the list sends is answered from an
index, and thousands of files page through without a duplicate or a gap."""

from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.media import intake
from services.media.context import MediaRuntime
from services.media.filetypes import JPEG, MOV
from services.media.models import MEDIA, FileDetails
from services.media.service import FILTER_FIELDS, SCOPE_FIELDS, scope_equality
from services.media.upload import SpooledFile
from shared.auth import Principal, Role
from shared.orgtree import example_city
from shared.windows import newest_first
from tests.support import RunningService, auth, index_used, run_service

pytestmark = pytest.mark.usefixtures("stack_env")

ORG = example_city()
FILES = 3000
NOW = datetime.now(UTC).replace(microsecond=0)
CAMPAIGNS = (None, "spring-sports", "reading-month")
# schools of two counties, the counties' own bureaus, a directly run unit and the city
UNITS = [u.code for u in ORG.schools("dh") + ORG.schools("xs")] + ["dh", "xs", "jc-yz", "jc"]


def _file(rng: random.Random, runtime: MediaRuntime, spool: Path, stored_at: datetime) -> Any:
    """A media document as intake builds it (``intake.new_document``), stored at a given
    moment; the objects themselves are not needed to list it."""
    real = JPEG if rng.random() < 0.8 else MOV
    digest = hashlib.sha256(uuid.uuid4().bytes).hexdigest()
    spooled = SpooledFile(spool, None, real.content_type, real, real, 1024, digest)
    details = FileDetails(
        width=64, height=48, captured_at=None, gps_removed=False, metadata_removed=True,
        poster="stored" if real is MOV else None,
    )  # fmt: skip
    processed = intake.Processed(spooled, spool, [], details)
    uploader = Principal(sub="tester", name="测试", unit="jc", roles=frozenset({Role.ADMIN}))
    target = intake.Target(rng.choice(UNITS), rng.choice(CAMPAIGNS))
    doc = intake.new_document(
        runtime=runtime, principal=uploader, target=target, processed=processed
    )
    doc["stored_at"] = stored_at
    return doc


@pytest.fixture(scope="module")
async def listed(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Any]:
    """Three thousand files over three years; a quarter of the moments are shared by
    several files, so that only the id orders them."""
    spool = tmp_path_factory.mktemp("media-lists") / "file"
    spool.write_bytes(b"x" * 1024)
    async with run_service("media", mongo_database=f"media_lists_{uuid.uuid4().hex[:8]}") as svc:
        runtime: MediaRuntime = svc.app.state.media
        rng = random.Random(19)
        moments = [NOW - timedelta(minutes=rng.randrange(3 * 365 * 24 * 60)) for _ in range(750)]
        docs = [_file(rng, runtime, spool, moments[i % len(moments)]) for i in range(FILES)]
        for start in range(0, FILES, 500):
            await runtime.media.insert_many([dict(d) for d in docs[start : start + 500]])
        yield svc, docs


def _in_order(docs: list[Any]) -> list[str]:
    ordered = sorted(docs, key=lambda doc: (-doc["stored_at"].timestamp(), doc["_id"]))
    return [doc["_id"] for doc in ordered]


async def _every_page(svc: RunningService, headers: dict[str, str], **params: Any) -> list[str]:
    seen: list[str] = []
    cursor = None
    for _ in range(FILES):
        query = {**params, "limit": 50, **({"cursor": cursor} if cursor else {})}
        page = await svc.client.get("/media", params=query, headers=headers)
        assert page.status_code == 200, page.text
        body = page.json()
        assert len(body["items"]) <= 50
        seen += [item["id"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return seen
    raise AssertionError("the list never ended")


async def test_the_city_pages_through_thousands_of_files_in_exactly_newest_first_order(
    listed: Any,
) -> None:
    svc, docs = listed
    seen = await _every_page(svc, auth("jc", Role.REVIEWER_CITY))
    assert len(seen) == len(set(seen)) == FILES
    assert seen == _in_order(docs)


async def test_a_county_sees_exactly_its_own_files_and_a_school_its_own(listed: Any) -> None:
    svc, docs = listed
    county = auth("dh", Role.REVIEWER_COUNTY)
    dh = [doc for doc in docs if doc["unit_path"]["county"] == "dh"]
    assert {doc["unit"] for doc in dh} > {"dh"}  # the bureau's own and its schools'
    assert await _every_page(svc, county) == _in_order(dh)
    videos = [doc for doc in dh if doc["kind"] == "video" and doc["campaign"] == "spring-sports"]
    narrowed = await _every_page(svc, county, kind="video", campaign="spring-sports")
    assert narrowed == _in_order(videos) and narrowed
    other = await svc.client.get("/media", params={"unit": "xs"}, headers=county)
    assert other.status_code == 403 and other.json()["code"] == "unit_out_of_scope"
    school = ORG.schools("dh")[0].code
    own = [doc for doc in docs if doc["unit"] == school]
    assert await _every_page(svc, auth(school, Role.CORRESPONDENT)) == _in_order(own) and own
    # the city narrows to a county or a directly run unit (which has no county)
    city = auth("jc", Role.REVIEWER_CITY)
    xs = [doc for doc in docs if doc["unit_path"]["county"] == "xs"]
    assert await _every_page(svc, city, unit="xs") == _in_order(xs)
    direct = [doc for doc in docs if doc["unit"] == "jc-yz"]
    assert await _every_page(svc, city, unit="jc-yz") == _in_order(direct) and direct


async def test_every_shape_the_list_sends_is_answered_from_an_index(listed: Any) -> None:
    """A window (the equalities and one range on the time) and the rest of a moment (the
    equalities, the time and a range on the id), for every scope and filter."""
    svc, _ = listed
    media = svc.runtime.db[MEDIA]
    window = {"$gte": NOW - timedelta(days=1), "$lt": NOW}
    values = {"campaign": "spring-sports", "kind": "photo"}
    scopes = {("unit_path.county",): "dh", ("unit",): "dh-syxx", (): "jc"}
    assert set(scopes) == set(SCOPE_FIELDS)
    for scope, unit in scopes.items():
        for filters in FILTER_FIELDS:
            equal = {**scope_equality(ORG, unit), **{field: values[field] for field in filters}}
            assert set(equal) == {*scope, *filters}
            for where, sort in (
                ({**equal, "stored_at": window}, newest_first("stored_at")),
                ({**equal, "stored_at": NOW, "_id": {"$gt": "0"}}, [("_id", 1)]),
            ):
                assert await index_used(media, where, sort)
    names = {index["name"] async for index in await media.list_indexes()}
    assert "unit_1_stored_at_-1__id_-1" not in names  # the order before the windows
