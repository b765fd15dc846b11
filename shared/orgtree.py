"""The unit tree: city bureau -> county bureaus -> schools, plus units the city runs
directly. Loaded from YAML (``CITYDESK_ORG_FILE`` or the example city shipped here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml

from shared.events import UnitPath

UnitType = Literal["city", "county", "school", "direct"]
Area = Literal["urban", "rural"]
EXAMPLE_CITY = Path(__file__).parent / "data" / "city.yaml"


@dataclass(frozen=True)
class Unit:
    code: str
    name: str
    type: UnitType
    area: Area
    parent: str | None
    county: str | None
    # the day the unit joined the desk when later than the deployment's go-live
    joined: date | None = None

    def is_school(self) -> bool:
        return self.type in ("school", "direct")


@dataclass
class OrgTree:
    city: Unit
    units: dict[str, Unit] = field(default_factory=dict)

    def get(self, code: str) -> Unit | None:
        return self.units.get(code)

    def unit(self, code: str) -> Unit:
        found = self.units.get(code)
        if found is None:
            raise KeyError(f"unknown unit {code!r}")
        return found

    def path(self, code: str) -> UnitPath:
        unit = self.unit(code)
        return UnitPath(city=self.city.code, county=unit.county, unit=unit.code)

    def ancestors(self, code: str) -> list[str]:
        """The unit itself, then each parent up to the city."""
        chain = []
        current: str | None = code
        while current is not None:
            chain.append(current)
            current = self.units[current].parent
        return chain

    def contains(self, scope: str, target: str) -> bool:
        """Whether ``target`` is ``scope`` or a unit below it."""
        if target not in self.units or scope not in self.units:
            return False
        return scope in self.ancestors(target)

    def counties(self) -> list[Unit]:
        return [u for u in self.units.values() if u.type == "county"]

    def schools(self, county: str | None = None) -> list[Unit]:
        return [
            u
            for u in self.units.values()
            if u.is_school() and (county is None or u.county == county)
        ]

    def below(self, scope: str) -> list[Unit]:
        return [u for u in self.units.values() if self.contains(scope, u.code)]


def _day(value: object) -> date | None:
    """A ``joined`` date as YAML gives it (a date) or as text (``2026-03-01``)."""
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


def parse_org(data: dict) -> OrgTree:  # type: ignore[type-arg]
    city_data = data["city"]
    city = Unit(city_data["code"], city_data["name"], "city", "urban", None, None)
    tree = OrgTree(city=city, units={city.code: city})
    for county in data.get("counties", []):
        cunit = Unit(county["code"], county["name"], "county", county.get("area", "urban"),
                     city.code, county["code"], _day(county.get("joined")))  # fmt: skip
        tree.units[cunit.code] = cunit
        for school in county.get("units", []):
            tree.units[school["code"]] = Unit(
                school["code"], school["name"], school.get("type", "school"),
                school.get("area", cunit.area), cunit.code, cunit.code,
                _day(school.get("joined")),
            )  # fmt: skip
    for direct in data.get("direct_units", []):
        tree.units[direct["code"]] = Unit(
            direct["code"], direct["name"], "direct", direct.get("area", "urban"), city.code, None,
            _day(direct.get("joined")),
        )  # fmt: skip
    return tree


def load_org(path: str | Path | None = None) -> OrgTree:
    source = Path(path) if path else EXAMPLE_CITY
    # libyaml's loader when built in: a province's tree of tens of thousands of units
    # loads in well under a second instead of several
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return parse_org(yaml.load(source.read_text(encoding="utf-8"), Loader=loader))


@lru_cache
def example_city() -> OrgTree:
    return load_org(None)
