"""Campaigns (专题宣传活动): which items count for which task owner, completion entries
once enough arrived in time, and each task's progress."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from services.scoring.periods import parse_period
from services.scoring.scorers import new_entry
from services.scoring.service import CAMPAIGN_ITEMS, CAMPAIGNS, Db, RuleBook
from shared.clock import utcnow
from shared.orgtree import OrgTree, Unit


def task_owners(org: OrgTree, task: dict[str, Any], unit_code: str) -> list[Unit]:
    """The owners of ``task`` whose progress an item of ``unit_code`` counts toward."""
    unit = org.get(unit_code)
    if unit is None:
        return []
    owners = [unit] if unit.type == task["owner_type"] else []
    if task.get("include_below") and task["owner_type"] == "county" and unit.type != "county":
        county = org.get(unit.county or "")
        if county is not None:
            owners.append(county)
    return owners


def task_units(org: OrgTree, task: dict[str, Any], owner: Unit) -> list[str]:
    """The units whose items count for ``owner`` on ``task``."""
    if task.get("include_below") and owner.type == "county":
        return [owner.code, *(u.code for u in org.schools(owner.code))]
    return [owner.code]


async def delivered_on_time(
    *, db: Db, org: OrgTree, campaign: dict[str, Any], task: dict[str, Any], owner: Unit
) -> int:
    """How many items ``owner`` delivered for ``task`` within the campaign and deadline."""
    start = parse_period(campaign["period"]).start()
    return await db[CAMPAIGN_ITEMS].count_documents(
        {
            "campaign": campaign["code"],
            "what": task["what"],
            "unit": {"$in": task_units(org, task, owner)},
            "occurred_at": {"$gte": start, "$lte": task["deadline"]},
        }
    )


async def complete_campaign_tasks(
    *,
    db: Db,
    book: RuleBook,
    org: OrgTree,
    items: list[dict[str, Any]],
    campaign_codes: Iterable[str] = (),
) -> list[dict[str, Any]]:
    """Completion entries for the campaign tasks that ``items`` (or, for
    ``campaign_codes``, any unit) may have completed. Order-free: a task is complete when
    enough items arrived in time, whichever came last."""
    wanted: dict[str, set[str] | None] = defaultdict(set)
    for item in items:
        units = wanted[item["campaign"]]
        if units is not None:
            units.add(item["unit"])
    for code in campaign_codes:
        wanted[code] = None  # every unit
    if not wanted:
        return []
    campaigns = await db[CAMPAIGNS].find({"_id": {"$in": list(wanted)}}).to_list()
    entries: list[dict[str, Any]] = []
    for campaign in campaigns:
        for task in campaign["tasks"]:
            units = wanted[campaign["_id"]]
            if units is None:
                owners = [u for u in org.units.values() if u.type == task["owner_type"]]
            else:
                owners = list(
                    {o.code: o for u in units for o in task_owners(org, task, u)}.values()
                )
            for owner in owners:
                done = await delivered_on_time(
                    db=db, org=org, campaign=campaign, task=task, owner=owner
                )
                if done < task["count"]:
                    continue
                entries.append(_completion(book, campaign, task, owner, done))
    return entries


async def campaign_progress(
    *, db: Db, org: OrgTree, campaign: dict[str, Any], now: datetime | None = None
) -> dict[str, Any]:
    """Per task and owner unit: delivered in time, late, shortfall and status."""
    now = now or utcnow()
    start = parse_period(campaign["period"]).start()
    tasks, shortfalls = [], []
    for task in campaign["tasks"]:
        on_time: dict[str, int] = defaultdict(int)
        late: dict[str, int] = defaultdict(int)
        cursor = db[CAMPAIGN_ITEMS].find(
            {"campaign": campaign["_id"], "what": task["what"]},
            projection={"unit": 1, "occurred_at": 1},
        )
        async for item in cursor:
            if start <= item["occurred_at"] <= task["deadline"]:
                on_time[item["unit"]] += 1
            elif item["occurred_at"] > task["deadline"]:
                late[item["unit"]] += 1
        past_deadline = now > task["deadline"]
        rows = []
        for owner in sorted(org.units.values(), key=lambda u: u.code):
            if owner.type != task["owner_type"]:
                continue
            members = task_units(org, task, owner)
            delivered = sum(on_time[m] for m in members)
            short = max(0, task["count"] - delivered)
            status = "done" if short == 0 else ("short" if past_deadline else "in_progress")
            row = {
                "unit": owner.code,
                "name": owner.name,
                "county": owner.county,
                "target": task["count"],
                "delivered": delivered,
                "late": sum(late[m] for m in members),
                "shortfall": short,
                "status": status,
            }
            rows.append(row)
            if status == "short":
                shortfalls.append({"task": task["code"], **row})
        tasks.append(
            {
                "code": task["code"],
                "owner_type": task["owner_type"],
                "what": task["what"],
                "count": task["count"],
                "deadline": task["deadline"].astimezone(UTC).isoformat(),
                "past_deadline": past_deadline,
                "units": rows,
            }
        )
    return {
        "code": campaign["_id"],
        "name": campaign["name"],
        "period": campaign["period"],
        "tasks": tasks,
        "shortfalls": shortfalls,
    }


def _completion(
    book: RuleBook, campaign: dict[str, Any], task: dict[str, Any], owner: Unit, done: int
) -> dict[str, Any]:
    """The ledger entry of ``owner`` completing ``task``, dated at its deadline."""
    version = book.at(task["deadline"])
    points = task.get("points")
    if points is None:
        points = version.rules.campaign.completion_points
    return new_entry(
        key=f"campaign|{campaign['_id']}|{task['code']}|{owner.code}",
        kind="campaign_completed",
        unit=owner,
        at=task["deadline"],
        points=points,
        reason=f"完成专题任务：{campaign['name']}（{task['what']} {task['count']}）",
        rule_version=version.version,
        source_event_id=None,
        counts={"campaign_tasks_completed": 1},
        detail={"campaign": campaign["_id"], "task": task["code"], "delivered": done},
    )
