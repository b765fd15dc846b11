"""The scoring rule set, campaigns and the API's request and response models."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.scoring.totals import Measure
from shared.events import Code, OutletLevel, Placement, Severity

UnitType = Literal["county", "school", "direct"]
Area = Literal["urban", "rural"]
QuotaPeriod = Literal["month", "quarter", "half", "year"]
AdoptionMode = Literal["highest_only", "add_up"]
CampaignWhat = Literal["stories", "photos", "videos", "highlight"]


BOTH_AREAS: tuple[Area, ...] = ("urban", "rural")

# a rule's number: finite, not negative, and of a size a bureau could mean
Points = Annotated[float, Field(ge=0, le=10_000, allow_inf_nan=False)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class StoryPoints(Strict):
    submitted: Points = 1.0
    approved: Points = 2.0
    returned: Points = 0.0
    rejected: Points = 0.0


class PublicationPoints(Strict):
    """Points for publication on the bureau's own platforms, per story and channel."""

    channel_points: dict[str, Points] = Field(default_factory=dict)
    default_channel_points: Points = 1.0
    photo_bonus: Points = 0.0
    video_bonus: Points = 0.0


class AdoptionPoints(Strict):
    """Outside adoption: outlet level × placement, plus a leader's instruction bonus."""

    mode: AdoptionMode = "highest_only"
    same_tier_counts_once: bool = True
    levels: dict[OutletLevel, Points]
    placement: dict[Placement, Points]
    leader_instruction: dict[OutletLevel, Points] = Field(default_factory=dict)

    def value(self, level: OutletLevel, placement: Placement) -> float:
        return self.levels.get(level, 0.0) * self.placement.get(placement, 1.0)


class OpinionRules(Strict):
    serious_severity: Severity = Severity.ORANGE


class CampaignRules(Strict):
    completion_points: Points = 5.0


class Quota(Strict):
    """One line of the task table (任务分解表)."""

    code: Code
    name: str
    unit_types: list[UnitType]
    areas: list[Area] = Field(default_factory=lambda: list(BOTH_AREAS))
    period: QuotaPeriod
    measure: Measure
    target: int = Field(ge=1, le=1_000_000)
    deduction_per_missing: Points = 0.0


class RuleSet(Strict):
    name: str
    stories: StoryPoints = Field(default_factory=StoryPoints)
    publication: PublicationPoints = Field(default_factory=PublicationPoints)
    adoption: AdoptionPoints
    opinion: OpinionRules = Field(default_factory=OpinionRules)
    campaign: CampaignRules = Field(default_factory=CampaignRules)
    quotas: list[Quota] = Field(default_factory=list)

    @model_validator(mode="after")
    def _quota_codes_unique(self) -> RuleSet:
        codes = [q.code for q in self.quotas]
        if len(codes) != len(set(codes)):
            raise ValueError("quota codes must be unique")
        return self


class RuleVersion(BaseModel):
    version: int
    effective_from: datetime
    created_at: datetime
    created_by: str
    rules: RuleSet


class RulesUpdate(Strict):
    rules: RuleSet
    effective_from: datetime | None = Field(
        default=None, description="when the new version starts to apply (default: now)"
    )


class CampaignTask(Strict):
    code: Code
    owner_type: UnitType
    what: CampaignWhat
    count: int = Field(ge=1, le=1_000_000)
    deadline: datetime
    include_below: bool = Field(
        default=False, description="a county's task also counts what its schools deliver"
    )
    points: Points | None = Field(default=None, description="completion points (default: rules)")


class CampaignCreate(Strict):
    code: Code
    name: str = Field(min_length=1, max_length=200)
    period: str = Field(description="e.g. year:2026 or quarter:2026-Q4")
    tasks: list[CampaignTask] = Field(min_length=1)

    @model_validator(mode="after")
    def _task_codes_unique(self) -> CampaignCreate:
        codes = [t.code for t in self.tasks]
        if len(codes) != len(set(codes)):
            raise ValueError("task codes must be unique within a campaign")
        for task in self.tasks:
            if task.deadline.tzinfo is None:
                raise ValueError(f"task {task.code}: deadline needs a time zone")
        return self
