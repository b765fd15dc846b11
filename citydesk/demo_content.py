"""What the demo city writes: stories composed from parts in the register of school publicity work,
public-opinion items for the feed, and photos drawn on the fly."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path
from typing import NotRequired, TypedDict

from PIL import Image, ImageDraw

# ---- stories composed from parts -------------------------------------------------------
# Each theme has titles, openings, voices and closings, and about a dozen details, each
# written in three or four wordings of its own. A story takes one opening, four of its
# theme's details (one wording each) in a random order, maybe a voice and a closing, with
# its own numbers, grades and people. The copy detector compares normalised sentences
# (names, numbers and dates replaced), so two schools' stories on one theme must rarely
# share the same sentences: with only a few wordings and details, nearly every pair of
# same-theme stories was flagged. Only the copies the demo plants on purpose look alike.
SURNAMES = (
    "王李张刘陈杨黄赵周吴徐孙马朱胡郭何林罗高郑梁谢宋唐许韩冯邓曹彭曾肖田"
    "董潘袁蔡蒋余杜叶程魏苏吕丁任沈"
)
GIVEN_NAMES = [
    "晓燕", "建国", "丽华", "志强", "海燕", "明轩", "文静", "国栋", "红梅", "伟东", "春兰",
    "子涵", "思远", "雨桐", "俊杰", "秀英", "立新", "慧敏", "振华", "雪梅", "浩然", "佳怡",
]  # fmt: skip
GRADES = ["一年级", "二年级", "三年级", "四年级", "五年级", "六年级", "七年级", "八年级", "九年级"]
ROLES = ["校长", "副校长", "德育主任", "教导主任", "班主任", "体育老师", "语文老师", "家长代表"]


def _person(rng: random.Random) -> str:
    return rng.choice(SURNAMES) + rng.choice(GIVEN_NAMES)


class Theme(TypedDict):
    category: str
    titles: list[str]
    openings: list[str]
    details: list[list[str]]
    voices: list[str]
    closings: list[str]
    pools: NotRequired[dict[str, list[str]]]


# the themes are data, kept beside this module as JSON so the prose is edited as prose
THEMES: list[Theme] = json.loads(
    (Path(__file__).parent / "demo_themes.json").read_text(encoding="utf-8")
)


DETAILS_PER_STORY = 4


def compose_story(
    rng: random.Random, *, school: str, county: str, date: str
) -> tuple[str, str, str]:
    """(category, title, body) of one story: one theme, its parts drawn and filled in."""
    theme = rng.choice(THEMES)
    slots: dict[str, object] = {
        "school": school, "county": county, "date": date,
        "nth": rng.randint(3, 30), "n": rng.randint(3, 24), "count": rng.randint(12, 1200),
        "grade": rng.choice(GRADES), "role": rng.choice(ROLES), "person": _person(rng),
        "kid": _person(rng), "teacher": _person(rng), "parents": rng.randint(8, 120),
        "meters": rng.choice((50, 100, 200, 400, 800)), "seconds": f"{rng.uniform(7, 70):.1f}",
        "days": rng.randint(1, 3), "classes": rng.randint(2, 40), "books": rng.randint(6, 60),
        "books2": rng.randint(80, 3000), "percent": rng.randint(82, 99),
        "percent2": rng.randint(85, 99), "hour": rng.randint(8, 11), "minutes": rng.randint(1, 4),
        "seconds2": rng.randint(5, 59), "years": rng.randint(12, 38), "weeks": rng.randint(3, 12),
        "area": rng.randint(200, 3000), "lines": rng.randint(2, 6), "month": rng.randint(6, 8),
        "day": rng.randint(1, 14), "day2": rng.randint(15, 28),
        "courses": rng.randint(8, 32),
        "teachers": rng.randint(6, 40),
        "reps": rng.randint(8, 30),
        "helpers": rng.randint(2, 12),
        "pupils": rng.randint(30, 52),
        "speaker": _person(rng),
        "age": rng.randint(72, 95),
    }  # fmt: skip
    slots["ta"] = rng.choice("他她")  # the teacher of a profile, one person throughout
    pools = theme.get("pools", {})
    for name, choices in pools.items():
        slots[name] = rng.choice(choices)

    def fill(text: str) -> str:
        return text.format(**slots)

    # a story covers only some of its theme's details, each in one of its wordings, so
    # two schools' stories share few sentences word for word
    details = theme["details"]
    parts = [rng.choice(theme["openings"])]
    parts += [rng.choice(wordings) for wordings in rng.sample(details, k=DETAILS_PER_STORY)]
    if rng.random() < 0.7:
        parts.insert(rng.randint(2, len(parts)), rng.choice(theme["voices"]))
    parts.append(rng.choice(theme["closings"]))
    paragraphs, current = [], ""
    for sentence in parts:
        current += fill(sentence)
        if len(current) > 90 and rng.random() < 0.6:
            paragraphs.append(current)
            current = ""
    if current:
        paragraphs.append(current)
    title = fill(rng.choice(theme["titles"]))
    return str(theme["category"]), title, "\n".join(paragraphs)


OPINION_NOISE: list[str] = [
    "孩子在学校参加了运动会，老师组织得很好，点赞。",
    "请问今年秋季招生报名什么时候开始？需要准备哪些材料？",
    "学校门口新修的人行道很方便，谢谢教育局。",
    "今天学校开展了消防演练，孩子回家讲得很开心。",
    "课后服务的书法课很受欢迎，希望继续开设。",
    "学校图书馆周末能不能对学生开放？",
]

# an incident that unfolds: complaints about the canteen of one school, growing over a day
INCIDENT_POSTS: list[str] = [
    "{school}食堂饭菜有异味，孩子吃完肚子疼，好几个同学都不舒服。",
    "我家孩子也是，{school}中午吃完饭就开始呕吐，送医院了，怀疑食物中毒！",
    "{school}食堂到底怎么回事？已经不是第一次了，饭菜变质还给孩子吃。",
    "听说{school}有十几个学生食物中毒住院了，学校一直不回应，太让人气愤了。",
    "{school}的家长群都炸了，食堂卫生问题必须彻查，给家长一个交代！",
    "记者已经来了，{school}食物中毒的事情上了本地热搜。",
    "強烈要求徹查{school}食堂，孩子們的健康誰來負責？",
    "{school}食堂承包商有问题，监管部门在哪里？孩子吃坏肚子没人管。",
]


def draw_photo(seed: int, width: int = 960, height: int = 640) -> bytes:
    """A JPEG 'photo' of coloured shapes: different for every seed, real bytes to check."""
    rng = random.Random(seed)
    image = Image.new("RGB", (width, height), tuple(rng.randrange(60, 200) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x, y = rng.randrange(width), rng.randrange(height)
        r = rng.randrange(20, 160)
        colour = tuple(rng.randrange(256) for _ in range(3))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()
