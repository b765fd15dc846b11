"""Keyset (cursor) pagination: a page costs the same on the first day and after ten
years, because it starts from where the last one ended instead of skipping what came
before (``skip`` reads and throws away every earlier document).

A list route takes :func:`page_query` as a dependency and answers with
:class:`Page`: at most ``limit`` items and ``next_cursor``, an opaque token for the next
page (``None`` on the last). The sort must end with a unique field (``_id``) so that no
item is shown twice or skipped when many share a sort value; the filter plus sort should
be served by one index.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Annotated, Any, Generic, TypeVar

from bson import json_util
from fastapi import Query
from pydantic import BaseModel, Field
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection

from shared.refusals import Refusal

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 200

Sort = Sequence[tuple[str, int]]


class PageQuery(BaseModel):
    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    cursor: str | None = None


class Page(BaseModel, Generic[T]):
    """One page of a list; ask again with ``cursor=next_cursor`` for the next."""

    items: list[T]
    next_cursor: str | None = None

    @classmethod
    def of(cls, found: tuple[list[T], str | None]) -> Page[T]:
        """The page of what a keyset read found: its items and the next cursor."""
        items, next_cursor = found
        return cls(items=items, next_cursor=next_cursor)


def page_query(
    limit: Annotated[
        int, Query(ge=1, le=MAX_LIMIT, description="at most this many items (default 50)")
    ] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None, Query(max_length=1024, description="next_cursor of the page before")
    ] = None,
) -> PageQuery:
    return PageQuery(limit=limit, cursor=cursor)


def _bad_cursor() -> Refusal:
    return Refusal(
        422,
        "bad_cursor",
        "翻页参数无效，请从第一页重新查看",
        "the cursor is not one this list issued",
    )


def _value(doc: dict[str, Any], path: str) -> Any:
    value: Any = doc
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def encode_cursor(sort: Sort, doc: dict[str, Any]) -> str:
    """The token that resumes after ``doc`` under ``sort``."""
    state = {"f": [field for field, _ in sort], "v": [_value(doc, field) for field, _ in sort]}
    return base64.urlsafe_b64encode(json_util.dumps(state).encode()).decode().rstrip("=")


def decode_cursor(sort: Sort, cursor: str) -> list[Any]:
    """The sort values a cursor resumes after; a cursor of another list is refused."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        state = json_util.loads(raw)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise _bad_cursor() from exc
    fields = [field for field, _ in sort]
    if (
        not isinstance(state, dict)
        or state.get("f") != fields
        or len(state.get("v", [])) != len(fields)
    ):
        raise _bad_cursor()
    return list(state["v"])


def after(sort: Sort, values: list[Any]) -> dict[str, Any]:
    """The filter for documents strictly after ``values`` in ``sort`` order."""
    branches = []
    for index, (field, direction) in enumerate(sort):
        branch = {sort[i][0]: values[i] for i in range(index)}
        branch[field] = {"$gt" if direction > 0 else "$lt": values[index]}
        branches.append(branch)
    return branches[0] if len(branches) == 1 else {"$or": branches}


def resume_steps(filter: dict[str, Any], sort: Sort, values: list[Any]) -> list[dict[str, Any]]:
    """:func:`after` as one filter per sort key, to be read in this order: the documents
    tied with the cursor on every key but the last and past it on the last, then tied on
    one key fewer and past it on the next, and so on. Each is ``filter`` plus equalities
    and one range, the shape MongoDB and the embedded server alike answer from the index
    ``(filter's fields, sort keys)``; the ``$or`` of :func:`after` the embedded server
    answers by reading the whole collection."""
    steps = []
    for index in reversed(range(len(sort))):
        branch: dict[str, Any] = {sort[i][0]: values[i] for i in range(index)}
        field, direction = sort[index]
        branch[field] = {"$gt" if direction > 0 else "$lt": values[index]}
        clash = any(key in filter for key in branch)
        steps.append({"$and": [filter, branch]} if clash else {**filter, **branch})
    return steps


async def keyset_page(
    collection: AsyncCollection[dict[str, Any]],
    filter: dict[str, Any],
    *,
    sort: Sort,
    query: PageQuery,
    projection: dict[str, Any] | None = None,
    session: AsyncClientSession | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of ``collection`` matching ``filter`` in ``sort`` order, and the cursor of
    the next page (``None`` when this is the last)."""
    if not sort or sort[-1][0] != "_id":
        raise ValueError("a keyset sort must end with _id")
    steps = [filter]
    if query.cursor:
        steps = resume_steps(filter, sort, decode_cursor(sort, query.cursor))
    if projection is not None and any(value for value in projection.values()):
        projection = {**projection, **{field: 1 for field, _ in sort}}
    docs: list[dict[str, Any]] = []
    for where in steps:  # in sort order; stop once the page (and one more) is full
        docs += await collection.find(
            where,
            projection=projection,
            sort=list(sort),
            limit=query.limit + 1 - len(docs),
            session=session,
        ).to_list()
        if len(docs) > query.limit:
            break
    if len(docs) <= query.limit:
        return docs, None
    docs = docs[: query.limit]
    return docs, encode_cursor(sort, docs[-1])
