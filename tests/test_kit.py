"""The service kit over the real MongoDB-wire server: config refreshed across processes,
keyset pages without a gap or a duplicate, the leased delivery queue, outbound checks."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio
from pydantic import BaseModel
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from standardwebhooks.webhooks import WebhookVerificationError

from shared.clock import utcnow
from shared.configstore import ConfigStore
from shared.mongo import insert_new
from shared.outbound import (
    DeliveryQueue,
    UnsafeTarget,
    check_target,
    standard_headers,
    verify_standard,
)
from shared.paging import PageQuery, keyset_page
from shared.refusals import Refusal

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def db(stack_env: dict[str, str]) -> AsyncIterator[AsyncDatabase[dict[str, Any]]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        stack_env["CITYDESK_MONGO_URI"], tz_aware=True
    )
    yield client[f"kit_{uuid.uuid4().hex[:8]}"]
    await client.close()


class Limits(BaseModel):
    max_chars: int = 100
    words: list[str] = []


async def test_config_seeds_once_and_every_process_sees_a_replacement(db: Any) -> None:
    api_pod = ConfigStore(Limits, key="limits", seed=lambda: Limits(max_chars=100))
    worker = ConfigStore(Limits, key="limits", seed=lambda: Limits(max_chars=999))
    assert (await api_pod.seed(db)).max_chars == 100
    # a second process seeds with other defaults: the stored value wins
    assert (await worker.seed(db)).max_chars == 100
    await worker.replace(db, Limits(max_chars=300, words=["溺水"]), by="city-admin")
    assert worker.current.max_chars == 300 and worker.version == 2
    assert api_pod.current.max_chars == 100
    assert await api_pod.refresh(db) is True
    assert api_pod.current == Limits(max_chars=300, words=["溺水"])
    assert await api_pod.refresh(db) is False
    stamp = await api_pod.updated(db)
    assert stamp is not None and stamp["updated_by"] == "city-admin" and stamp["version"] == 2


async def test_insert_new_skips_what_is_there(db: Any) -> None:
    collection = db["insert_new"]
    first = await insert_new(collection, [{"_id": i} for i in range(5)])
    again = await insert_new(collection, [{"_id": i} for i in range(3, 8)])
    assert len(first) == 5
    assert [doc["_id"] for doc in again] == [5, 6, 7]
    assert await collection.count_documents({}) == 8


async def test_keyset_pages_cover_everything_once(db: Any) -> None:
    collection = db["paged"]
    base = utcnow()
    # many share a timestamp: the _id tie-breaker keeps pages exact
    docs = [
        {"at": base - timedelta(minutes=i // 7), "county": "xs" if i % 3 else "dh"}
        for i in range(1000)
    ]
    await collection.insert_many(docs)
    await collection.create_index([("county", 1), ("at", -1), ("_id", -1)])
    sort = [("at", -1), ("_id", -1)]
    seen: list[Any] = []
    cursor = None
    pages = 0
    while True:
        page, cursor = await keyset_page(
            collection, {"county": "xs"}, sort=sort, query=PageQuery(limit=37, cursor=cursor)
        )
        seen += [doc["_id"] for doc in page]
        pages += 1
        if cursor is None:
            break
    expected = [
        doc["_id"]
        async for doc in collection.find({"county": "xs"}, sort=sort, projection={"_id": 1})
    ]
    assert seen == expected and len(set(seen)) == len(seen) == 666
    assert pages == 18
    with pytest.raises(Refusal) as refused:
        await keyset_page(
            collection, {}, sort=sort, query=PageQuery(limit=5, cursor="not-a-cursor")
        )
    assert refused.value.code == "bad_cursor" and refused.value.status == 422


async def test_a_delivery_is_attempted_by_one_worker_and_retried_with_backoff(db: Any) -> None:
    queue = DeliveryQueue(db, "deliveries", lease_seconds=30, max_attempts=2, backoff_seconds=0)
    await queue.ensure_indexes()
    assert await queue.enqueue(key="a1", channel="wecom", target="http://x", payload={"n": 1})
    assert not await queue.enqueue(key="a1", channel="wecom", target="http://x", payload={})
    claims = await asyncio.gather(*(queue.claim(f"replica-{i}") for i in range(6)))
    taken = [claim for claim in claims if claim is not None]
    assert len(taken) == 1 and taken[0]["attempts"] == 1
    assert await queue.failed(taken[0], reason="timeout") is False
    retry = await queue.claim("replica-2")
    assert retry is not None and retry["attempts"] == 2
    assert await queue.failed(retry, reason="http 500", status=500) is True
    assert await queue.claim("replica-3") is None
    stored = await db["deliveries"].find_one({"key": "a1"})
    assert stored["state"] == "failed" and stored["last_status"] == 500


async def test_outbound_refuses_internal_addresses_unless_listed() -> None:
    for url in (
        "http://127.0.0.1:8080/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3/x",
        "http://[::1]/x",
        "http://localhost/x",
        "ftp://example.org/x",
        "javascript:alert(1)",
    ):
        with pytest.raises(UnsafeTarget):
            await check_target(url)
    await check_target("http://127.0.0.1:8080/hook", allow=["127.0.0.1:8080"])
    await check_target("http://10.1.2.3/x", allow=["10.0.0.0/8"])
    with pytest.raises(UnsafeTarget):
        await check_target("http://127.0.0.1:9090/hook", allow=["127.0.0.1:8080"])


async def test_standard_webhook_headers_verify_as_receivers_do() -> None:
    body = b'{"story":"s1"}'
    headers = standard_headers("a-shared-secret", "msg_1", body)
    assert set(headers) >= {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert verify_standard("a-shared-secret", body, headers) == {"story": "s1"}
    with pytest.raises(WebhookVerificationError):
        verify_standard("another-secret", body, headers)
