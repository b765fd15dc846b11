"""What forwarders change, folded away before two texts are compared.

Forwarders swap in their own school's name, the date, the head count and the teacher's
name and leave the rest; so unit names (any unit's, from the org tree, with their usual
short forms), dates and times, numbers and recognisable person names are replaced by
placeholders. Upper-case placeholders never survive ``lower()``, so no text can forge one.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache

import opencc

from shared.orgtree import OrgTree

UNIT, DATE, NUMBER, PERSON = "U", "D", "N", "P"  # upper case never survives ``lower()``


SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程"
    "苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝"
    "龚邵万钱严覃武戴莫孔向汤"
)
ROLES = (
    "副校长|校长|副书记|书记|副主任|主任|班主任|老师|教师|同学|副园长|园长|副局长|局长|"
    "组长|队长|辅导员|教练|医生|警官|所长|站长|教授|专家|家长|妈妈|爸爸"
)
AFTER_NAME = "和|与|及|等|在|为|向|对|说|表示|指出|强调|介绍|带|作|讲|致|宣|主持|的|也|还|一行"
_CN_DIGITS = "〇零一二两三四五六七八九十百千万"
_PERIOD = "上午|下午|晚上|中午|早上|傍晚|凌晨"
_DATE_PATTERNS = (
    r"\d{2,4}\s*年\s*\d{1,2}\s*月\s*\d{1,2}\s*[日号]?",
    rf"[{_CN_DIGITS}]{{2,4}}年[{_CN_DIGITS}]{{1,3}}月[{_CN_DIGITS}]{{1,3}}[日号]",
    r"\d{1,2}\s*月\s*\d{1,2}\s*[日号]",
    rf"[{_CN_DIGITS}]{{1,3}}月[{_CN_DIGITS}]{{1,3}}[日号]",
    r"\d{1,2}\s*月(?:上旬|中旬|下旬|初|底|份)?",
    r"\d{4}\s*年(?:度)?",
    rf"(?:{_PERIOD})?\s*\d{{1,2}}\s*[:：]\s*\d{{2}}",
    rf"(?:{_PERIOD})?\s*\d{{1,2}}\s*[时点](?:\d{{1,2}}分|半|整)?",
    rf"(?:{_PERIOD})?[{_CN_DIGITS}]{{1,3}}[时点](?:半|整)",
    r"(?:星期|周|礼拜)[一二三四五六日天]",
    r"近日|日前|近期|前不久|昨天|昨日|今天|今日|前天|本周|上周|本月|上月|当天|当日",
    _PERIOD,
)
_MEASURES = (
    "名|人|个|场|次|项|所|位|节|天|周|年级|届|班|件|篇|份|本|支|队|组|户|"
    "小时|分钟|公里|米|万元|元|册|台|张|家|批|期|轮|条|类"
)
_NUMBER_PATTERNS = (
    r"\d+(?:\.\d+)?\s*%?(?:余|多)?",
    rf"[{_CN_DIGITS}]+(?:余|多)?(?={_MEASURES})",
    rf"(?<=第)[{_CN_DIGITS}]+",
)
_SCHOOL_KINDS = {
    "实验小学": ("实小", "实验小学"),
    "第一小学": ("一小", "第一小学"),
    "第二小学": ("二小", "第二小学"),
    "第三小学": ("三小",),
    "第一中学": ("一中", "第一中学"),
    "第二中学": ("二中", "第二中学"),
    "实验中学": ("实验中学",),
    "职业中学": ("职中", "职业中学"),
    "中心幼儿园": ("中心幼儿园", "中心园"),
    "中心学校": ("中心学校", "中心校"),
    "特殊教育学校": ("特殊教育学校", "特校"),
    "职业技术学校": ("职业技术学校", "职校"),
}


_NOT_ALNUM = re.compile(r"[\W_]+")


@lru_cache(maxsize=1)
def _to_simplified() -> opencc.OpenCC:
    return opencc.OpenCC("t2s")


def _bare(place: str) -> str:
    """``东湖区`` → ``东湖``: the place name without its administrative suffix."""
    stripped = re.sub(r"(?:教育局|教育体育局|区|县|市|镇|乡)$", "", place)
    return stripped if len(stripped) >= 2 else place


def unit_name_forms(org: OrgTree) -> list[str]:
    """Every way a story names a unit of the tree: full names, the place without
    教育局, the school without its county, and the usual short forms (东湖一中, 湖滨中心校)."""
    forms: set[str] = set()
    county_places: dict[str, str] = {}
    for unit in org.units.values():
        if unit.type in ("city", "county"):
            place = unit.name.removesuffix("教育局")
            county_places[unit.code] = place
            forms.update({unit.name, place, _bare(place), f"{_bare(place)}教育局"})
    city_place = county_places.get(org.city.code, "")
    for unit in org.units.values():
        if not unit.is_school():
            continue
        forms.add(unit.name)
        place = county_places.get(unit.county or "", city_place)
        rest = unit.name.removeprefix(place) if place else unit.name
        prefixes = {place, _bare(place), ""} if place else {""}
        if unit.type == "direct":
            prefixes |= {"市", city_place, _bare(city_place)}
        town = re.match(r"^(.{2,3}?)(镇|乡|街道)", rest)
        kinds = [(kind, shorts) for kind, shorts in _SCHOOL_KINDS.items() if rest.endswith(kind)]
        for kind, shorts in kinds:
            stem = rest.removesuffix(kind)
            stems = {stem}
            if town:
                stems |= {town.group(1) + town.group(2), town.group(1)}
            for short in shorts:
                for prefix in prefixes:
                    for each in stems:
                        form = f"{prefix}{each}{short}"
                        if len(form) >= 3:
                            forms.add(form)
        if len(rest) >= 4:
            forms.add(rest)
    return sorted(forms, key=len, reverse=True)


class Normaliser:
    """Turns a text into what a forwarder cannot change without rewriting it."""

    def __init__(self, unit_names: Iterable[str]) -> None:
        names = sorted({name for name in unit_names if name}, key=len, reverse=True)
        self._dates = re.compile("|".join(_DATE_PATTERNS))
        self._units = re.compile("|".join(map(re.escape, names))) if names else None
        surname = f"(?:{'|'.join(sorted(SURNAMES_MULTI, key=len, reverse=True))}|[{SURNAMES}])"
        given = r"[\u4e00-\u9fff]"
        self._person_before_role = re.compile(rf"{surname}{given}{{0,2}}?(?=(?:{ROLES}))")
        # after a role the name's end is unknown: it must be followed by what follows names
        self._person_after_role = re.compile(
            rf"((?:{ROLES}))({surname}{given}{{1,2}})(?=[，。、；：！？“”（）\s]|{AFTER_NAME})"
        )
        self._numbers = re.compile("|".join(_NUMBER_PATTERNS))

    @classmethod
    def for_org(cls, org: OrgTree) -> Normaliser:
        return cls(unit_name_forms(org))

    def normalise(self, text: str) -> str:
        """Simplified, folded, lower case, placeholders for what forwarders swap, then
        letters, digits and placeholders only."""
        text = unicodedata.normalize("NFKC", _to_simplified().convert(text)).lower()
        text = self._dates.sub(DATE, text)
        if self._units is not None:
            text = self._units.sub(UNIT, text)
        text = self._person_after_role.sub(lambda m: m.group(1) + PERSON, text)
        text = self._person_before_role.sub(PERSON, text)
        text = self._numbers.sub(NUMBER, text)
        return _NOT_ALNUM.sub("", text)


SURNAMES_MULTI = ("欧阳", "司马", "上官", "诸葛")


@lru_cache(maxsize=4)
def normaliser_for(org: OrgTree) -> Normaliser:
    return Normaliser.for_org(org)
