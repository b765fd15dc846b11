"""What a copy detector has to see through, and how two texts are compared.

Forwarders swap in their own school's name, the date, the head count and the teacher's
name and leave the rest; so before anything is compared, unit names (any unit's, from
the org tree, with their usual short forms), dates and times, numbers and recognisable
person names are replaced by placeholders. Passages keep their place in the original
body, so that a reviewer sees the original words side by side.

Two scores: resemblance (Jaccard of the normalised character 3-grams, the whole texts
alike) and containment (the share of one text's passages found in the other, either
direction: a paragraph lifted into a longer story). Retrieval keys are winnowed k-gram
hashes, which guarantee that any shared normalised run of ``WINDOW + KGRAM - 1``
characters shares a key, so an embedded paragraph is found even when the whole texts
are not alike; a lookup asks for a spread of ``QUERY_KEYS`` of them, since each key is
one index probe.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import opencc

from shared.orgtree import OrgTree

KGRAM = 6
WINDOW = 40  # any shared normalised run of 45 characters shares at least one key
QUERY_KEYS = 16  # keys a lookup asks for, spread over the text (each costs an index probe)
MIN_PASSAGE_CHARS = 8  # shorter passages ("会议强调。") prove nothing either way
LONG_PASSAGE_CHARS = 80  # an unpunctuated run is cut into pieces of half this length
PASSAGE_FOUND = 0.8  # share of a passage's 3-grams present in the other text

UNIT, DATE, NUMBER, PERSON = "U", "D", "N", "P"  # upper case never survives ``lower()``

_SEEDS = (np.arange(1, 9, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)).reshape(-1)

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


# ---- passages, grams and keys -------------------------------------------------------
_SENTENCE_END = re.compile(r"[。！？!?；;\n]+")
_CLAUSE_END = re.compile(r"[，,、：:]+")


@dataclass(frozen=True)
class Passage:
    """A sentence of the original body: where it is, and what it normalises to."""

    start: int
    end: int
    normalised: str
    grams: np.ndarray = field(repr=False, compare=False)

    @property
    def weight(self) -> int:
        return len(self.normalised)


def _spans(body: str) -> list[tuple[int, int]]:
    """Sentences; a long one is cut at its commas into clauses of about half
    ``LONG_PASSAGE_CHARS``, and an unpunctuated run into pieces of that length."""
    spans, start = [], 0
    for match in _SENTENCE_END.finditer(body):
        spans.append((start, match.end()))
        start = match.end()
    if start < len(body):
        spans.append((start, len(body)))
    pieces: list[tuple[int, int]] = []
    for begin, end in spans:
        if end - begin <= LONG_PASSAGE_CHARS:
            pieces.append((begin, end))
            continue
        cuts = [m.end() for m in _CLAUSE_END.finditer(body, begin, end)]
        clause_start = begin
        for cut in [*cuts, end]:
            if cut - clause_start >= LONG_PASSAGE_CHARS // 2 or cut == end:
                pieces.extend(_chunks(clause_start, cut))
                clause_start = cut
    return [piece for piece in pieces if piece[1] > piece[0]]


def _chunks(begin: int, end: int) -> list[tuple[int, int]]:
    if end - begin <= LONG_PASSAGE_CHARS:
        return [(begin, end)]
    step = LONG_PASSAGE_CHARS // 2
    return [(at, min(at + step, end)) for at in range(begin, end, step)]


def grams_of(normalised: str) -> np.ndarray:
    """The set of character 3-grams, each packed exactly into 63 bits."""
    codes = np.frombuffer(normalised.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    if codes.size < 3:
        return np.empty(0, dtype=np.uint64)
    grams = (codes[:-2] << np.uint64(42)) | (codes[1:-1] << np.uint64(21)) | codes[2:]
    return np.unique(grams)


def _mix(values: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a bijection on 64-bit words."""
    values = (values ^ (values >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    values = (values ^ (values >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return values ^ (values >> np.uint64(31))


def winnowed_keys(normalised: str) -> np.ndarray:
    """The minimum k-gram hash of every window of ``WINDOW`` k-grams (Schleimer et al.'s
    winnowing), in the order they occur: two texts sharing a normalised run of
    ``WINDOW + KGRAM - 1`` characters share a key."""
    codes = np.frombuffer(normalised.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    if codes.size < KGRAM:
        return np.empty(0, dtype=np.uint64)
    count = codes.size - KGRAM + 1
    hashes = np.zeros(count, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for offset in range(KGRAM):
            hashes ^= _mix(codes[offset : offset + count] ^ _SEEDS[offset])
    if count <= WINDOW:
        return hashes[[int(hashes.argmin())]]
    windows = np.lib.stride_tricks.sliding_window_view(hashes, WINDOW)
    positions = np.unique(windows.argmin(axis=1) + np.arange(windows.shape[0]))
    keys = hashes[positions]
    _, first = np.unique(keys, return_index=True)
    return keys[np.sort(first)]


def query_keys(keys: np.ndarray) -> np.ndarray:
    """At most ``QUERY_KEYS`` of a text's keys, evenly spread over it: a copied
    paragraph of a fair share of the text still gets some."""
    if keys.size <= QUERY_KEYS:
        return keys
    return keys[np.linspace(0, keys.size - 1, QUERY_KEYS).round().astype(int)]


@dataclass(frozen=True)
class TextPrint:
    """A body's passages, its 3-gram set and its retrieval keys."""

    body: str
    passages: tuple[Passage, ...]
    grams: np.ndarray = field(repr=False)
    keys: np.ndarray = field(repr=False)

    @property
    def weight(self) -> int:
        return sum(p.weight for p in self.passages)

    @classmethod
    def of(cls, body: str, normaliser: Normaliser) -> TextPrint:
        passages = []
        for start, end in _spans(body):
            normalised = normaliser.normalise(body[start:end])
            if len(normalised) >= MIN_PASSAGE_CHARS:
                passages.append((start, end, normalised))
        return cls.from_passages(body, passages)

    @classmethod
    def from_passages(cls, body: str, passages: Iterable[Sequence[Any]]) -> TextPrint:
        """Rebuilt from stored ``(start, end, normalised)`` passages, without normalising
        again (what a lookup does with its candidates)."""
        kept = tuple(
            Passage(int(start), int(end), str(normalised), grams_of(str(normalised)))
            for start, end, normalised in passages
        )
        whole = "".join(p.normalised for p in kept)
        return cls(body, kept, grams_of(whole), winnowed_keys(whole))

    def stored_passages(self) -> list[list[int | str]]:
        return [[p.start, p.end, p.normalised] for p in self.passages]


# ---- scores -------------------------------------------------------------------------
def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    if a.size == 0 or b.size == 0:
        return 0.0
    common = np.intersect1d(a, b, assume_unique=True).size
    return common / (a.size + b.size - common)


def contained(part: np.ndarray, whole: np.ndarray) -> float:
    """The share of ``part``'s 3-grams present in ``whole``."""
    if part.size == 0:
        return 0.0
    return float(np.isin(part, whole, assume_unique=True).mean())


def _union(passages: Sequence[Passage]) -> np.ndarray:
    if not passages:
        return np.empty(0, dtype=np.uint64)
    return np.unique(np.concatenate([p.grams for p in passages]))


@dataclass(frozen=True)
class PassagePair:
    """One of our passages and the passage of theirs it was found in (spans in the
    original bodies, end exclusive)."""

    ours: tuple[int, int]
    theirs: tuple[int, int]


@dataclass(frozen=True)
class Comparison:
    resemblance: float  # Jaccard of the two texts' 3-grams
    ours_in_theirs: float  # share of our passage characters found in their text
    theirs_in_ours: float
    ours_found: int  # passages of ours found in theirs
    ours_counted: int  # passages of ours compared (standard-text passages left out)
    theirs_found: int
    theirs_counted: int
    matched_chars: int  # normalised characters of ours found in theirs, or theirs in ours
    pairs: tuple[PassagePair, ...]

    @property
    def containment(self) -> float:
        return max(self.ours_in_theirs, self.theirs_in_ours)

    def is_copy(self, *, resemblance: float, containment: float, min_chars: int) -> bool:
        if self.matched_chars < min_chars:
            return False
        return self.resemblance >= resemblance or self.containment >= containment


def _found(passages: Sequence[Passage], other: np.ndarray) -> list[Passage]:
    return [p for p in passages if contained(p.grams, other) >= PASSAGE_FOUND]


def standard_passages(text: TextPrint, standard: Sequence[TextPrint]) -> set[int]:
    """Indexes of ``text``'s passages found in any of the registered standard texts."""
    if not standard:
        return set()
    grams = np.unique(np.concatenate([s.grams for s in standard]))
    return {i for i, p in enumerate(text.passages) if contained(p.grams, grams) >= PASSAGE_FOUND}


def standard_share(text: TextPrint, standard: Sequence[TextPrint]) -> float:
    """The share of ``text`` (by normalised characters) made of registered standard text."""
    if text.weight == 0:
        return 0.0
    inside = standard_passages(text, standard)
    return sum(text.passages[i].weight for i in inside) / text.weight


def compare(ours: TextPrint, theirs: TextPrint, standard: Sequence[TextPrint] = ()) -> Comparison:
    """Resemblance and containment of two bodies, leaving out the passages either takes
    from a registered standard text (everyone is asked to republish those)."""
    our_skip = standard_passages(ours, standard)
    their_skip = standard_passages(theirs, standard)
    our_passages = [p for i, p in enumerate(ours.passages) if i not in our_skip]
    their_passages = [p for i, p in enumerate(theirs.passages) if i not in their_skip]
    our_grams, their_grams = _union(our_passages), _union(their_passages)
    ours_found = _found(our_passages, their_grams)
    theirs_found = _found(their_passages, our_grams)
    our_weight = sum(p.weight for p in our_passages)
    their_weight = sum(p.weight for p in their_passages)
    ours_chars = sum(p.weight for p in ours_found)
    theirs_chars = sum(p.weight for p in theirs_found)
    pairs = []
    for passage in ours_found:
        best = max(their_passages, key=lambda t: contained(passage.grams, t.grams))
        pairs.append(PassagePair((passage.start, passage.end), (best.start, best.end)))
    paired = {pair.theirs for pair in pairs}
    for passage in theirs_found:  # their passages that ours split or merged differently
        if (passage.start, passage.end) in paired:
            continue
        best = max(our_passages, key=lambda o: contained(passage.grams, o.grams))
        pairs.append(PassagePair((best.start, best.end), (passage.start, passage.end)))
    return Comparison(
        resemblance=round(jaccard(our_grams, their_grams), 4),
        ours_in_theirs=round(ours_chars / our_weight, 4) if our_weight else 0.0,
        theirs_in_ours=round(theirs_chars / their_weight, 4) if their_weight else 0.0,
        ours_found=len(ours_found),
        ours_counted=len(our_passages),
        theirs_found=len(theirs_found),
        theirs_counted=len(their_passages),
        matched_chars=max(ours_chars, theirs_chars),
        pairs=tuple(sorted(set(pairs), key=lambda pair: pair.ours)),
    )
