"""The bureau's public feed as JSON, RSS 2.0 and Atom, built from the feed entries, and
the ``story.published`` event every channel, adoption and withdrawal announces."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from xml.etree import ElementTree as ET

from pymongo.asynchronous.database import AsyncDatabase

from services.review.cases import media_links
from services.review.refused import not_found
from services.review.service import FEED, SERVICE
from services.review.settings import ReviewSettings
from shared import events as ev
from shared.orgtree import OrgTree
from shared.paging import MAX_LIMIT, PageQuery
from shared.windows import newest_first, windowed_page

ATOM_NS = "http://www.w3.org/2005/Atom"


def feed_link(settings: ReviewSettings, story_id: str) -> str:
    return f"{settings.review_public_url.rstrip('/')}/feed/{story_id}"


def published_event(
    case: dict[str, Any],
    *,
    kind: ev.PublicationKind,
    at: datetime,
    channel: str | None = None,
    outlet: str | None = None,
    outlet_level: ev.OutletLevel = ev.OutletLevel.BUREAU,
    placement: ev.Placement = ev.Placement.NORMAL,
    leader_instruction: bool = False,
    link: str | None = None,
    reason: str | None = None,
) -> ev.StoryPublishedEvent:
    story = case["story"]
    path = ev.UnitPath(**case["unit_path"])
    return ev.StoryPublishedEvent.build(
        ev.StoryPublished(
            story_id=case["story_id"], version=case["version"], unit_path=path, kind=kind,
            channel=channel, outlet=outlet, outlet_level=outlet_level, placement=placement,
            leader_instruction=leader_instruction, link=link, published_at=at,
            title=story["title"], category=story.get("category"), campaign=story.get("campaign"),
            photo_count=story.get("photo_count", 0), video_count=story.get("video_count", 0),
            reason=reason,
        ),
        producer=SERVICE, county=path.county, unit=path.unit,
        correlation_id=case.get("correlation_id"),
    )  # fmt: skip


LISTED_BY = "published_at"
NEWEST_FIRST = newest_first(LISTED_BY)


async def feed_entries(
    *, db: AsyncDatabase[dict[str, Any]], state: str, page: PageQuery
) -> tuple[list[dict[str, Any]], str | None]:
    """Feed entries in a state (published, or the withdrawn archive), newest first, read
    in time windows: the feed keeps every story ever published."""
    return await windowed_page(db[FEED], {"state": state}, field=LISTED_BY, query=page)


async def latest_entries(*, db: AsyncDatabase[dict[str, Any]], size: int) -> list[dict[str, Any]]:
    """The newest published entries, as RSS and Atom readers take them (the configured
    feed size: a reader polls the head of the feed and never pages)."""
    entries: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:  # pages of at most the kit's limit until the size is reached
        query = PageQuery(limit=min(size - len(entries), MAX_LIMIT), cursor=cursor)
        found, cursor = await windowed_page(
            db[FEED], {"state": "published"}, field=LISTED_BY, query=query
        )
        entries += found
        if cursor is None or len(entries) >= size:
            return entries


async def feed_entry(*, db: AsyncDatabase[dict[str, Any]], story_id: str) -> dict[str, Any]:
    entry = await db[FEED].find_one({"_id": story_id})
    if entry is None:
        raise not_found("未找到该已发布稿件", f"no published story {story_id!r}")
    return entry


def feed_item(entry: dict[str, Any], *, settings: ReviewSettings, org: OrgTree) -> dict[str, Any]:
    """One entry as the JSON feed shows it."""
    unit = org.get(entry["unit_path"]["unit"])
    item: dict[str, Any] = {
        "story_id": entry["_id"],
        "version": entry["version"],
        "title": entry["title"],
        "body": entry["body"],
        "category": entry.get("category"),
        "campaign": entry.get("campaign"),
        "unit": entry["unit_path"]["unit"],
        "unit_name": unit.name if unit else None,
        "link": feed_link(settings, entry["_id"]),
        "published_at": entry["published_at"].isoformat(),
        "updated_at": entry["updated_at"].isoformat(),
        "media": [m.model_dump() for m in media_links(settings, entry.get("media_ids", []))],
        "state": entry["state"],
    }
    if entry["state"] == "withdrawn":
        item["withdrawn_at"] = entry["withdrawn_at"].isoformat()
        item["withdraw_reason"] = entry.get("withdraw_reason")
    return item


def _summary_html(item: dict[str, Any]) -> str:
    images = "".join(
        f'<p><a href="{m["url"]}"><img src="{m["thumbnail"]}" alt=""/></a></p>'
        for m in item["media"]
    )
    lines = [line for line in item["body"].splitlines() if line.strip()]
    return "".join(f"<p>{_escape(line)}</p>" for line in lines) + images


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def render_rss(items: list[dict[str, Any]], *, title: str, settings: ReviewSettings) -> bytes:
    """RSS 2.0: one ``item`` per published story, media as links in the description."""
    base = settings.review_public_url.rstrip("/")
    rss = ET.Element("rss", version="2.0")
    channel = ET.SubElement(rss, "channel")
    ET.SubElement(channel, "title").text = title
    ET.SubElement(channel, "link").text = f"{base}/feed"
    ET.SubElement(channel, "description").text = title
    ET.SubElement(channel, "language").text = "zh-CN"
    ET.SubElement(channel, "lastBuildDate").text = format_datetime(datetime.now(UTC))
    for item in items:
        node = ET.SubElement(channel, "item")
        ET.SubElement(node, "title").text = item["title"]
        ET.SubElement(node, "link").text = item["link"]
        ET.SubElement(
            node, "guid", isPermaLink="false"
        ).text = f"urn:citydesk:story:{item['story_id']}"
        ET.SubElement(node, "pubDate").text = format_datetime(
            datetime.fromisoformat(item["published_at"])
        )
        if item["category"]:
            ET.SubElement(node, "category").text = item["category"]
        if item["unit_name"]:
            ET.SubElement(node, "author").text = item["unit_name"]
        ET.SubElement(node, "description").text = _summary_html(item)
    return ET.tostring(rss, encoding="utf-8", xml_declaration=True)


def render_atom(items: list[dict[str, Any]], *, title: str, settings: ReviewSettings) -> bytes:
    """Atom 1.0: media as ``enclosure`` links of each entry."""
    base = settings.review_public_url.rstrip("/")
    ET.register_namespace("", ATOM_NS)

    def sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
        node = ET.SubElement(parent, f"{{{ATOM_NS}}}{tag}", attrs)
        node.text = text
        return node

    feed = ET.Element(f"{{{ATOM_NS}}}feed")
    sub(feed, "title", title)
    sub(feed, "id", f"{base}/feed.atom")
    sub(feed, "link", href=f"{base}/feed.atom", rel="self")
    updated = max((item["updated_at"] for item in items), default=datetime.now(UTC).isoformat())
    sub(feed, "updated", updated)
    for item in items:
        entry = sub(feed, "entry")
        sub(entry, "title", item["title"])
        sub(entry, "id", f"urn:citydesk:story:{item['story_id']}")
        sub(entry, "link", href=item["link"], rel="alternate")
        sub(entry, "published", item["published_at"])
        sub(entry, "updated", item["updated_at"])
        author = sub(entry, "author")
        sub(author, "name", item["unit_name"] or item["unit"])
        if item["category"]:
            sub(entry, "category", term=item["category"])
        for media in item["media"]:
            sub(entry, "link", href=media["url"], rel="enclosure")
        sub(entry, "content", _summary_html(item), type="html")
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True)
