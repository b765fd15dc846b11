"""The labelled school-domain set the sentiment model is trained and judged on.

* ``data/train.jsonl`` — hand-written training items (parents, pupils, forums, hotline
  tickets, local news, official notices, school publicity; Simplified and natively written
  Traditional, HK and TW usage), each labelled negative or not with its register and topic;
* ``data/held_out.jsonl`` — hand-written in a separate pass, other situations and wording,
  never used for fitting or for choosing anything: the figures in the report come from it;
* composed items (training only): the same situations said in every register's voice, so
  that *who speaks* carries no label — a parent praising the canteen, a notice reporting a
  failed inspection;
* corrections: officers' "negative / not negative" marks, exported by the service into
  ``data/corrections.jsonl`` (training only; a correction overrides an item's label).

``python -m services.sentiment.dataset`` prints the counts by register, label and script.

Labels: *negative* means the text reports or voices a problem an opinion officer should
look at (a grievance, harm, misconduct, a failed inspection, an incident), whether or not
it uses complaint words. Praise, thanks, questions, neutral notices (a typhoon closure, a
power cut), prevention activities (a drowning-prevention lesson, an anti-bullying talk)
are not negative, however many 食堂 / 安全 / 老师 / 家长 they contain."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

import opencc

DATA = Path(__file__).parent / "data"
TRAIN = DATA / "train.jsonl"
HELD_OUT = DATA / "held_out.jsonl"
CORRECTIONS = DATA / "corrections.jsonl"
SEED = 20241129
REGISTERS = ("parent", "pupil", "forum", "hotline", "news", "notice", "publicity")
REGISTER_NAMES = {
    "parent": "家长发帖与提问",
    "pupil": "学生发帖",
    "forum": "微博/论坛",
    "hotline": "12345/热线工单",
    "news": "本地新闻",
    "notice": "官方通报/通知",
    "publicity": "学校宣传",
}

SCHOOLS = [
    "城南小学", "实验中学", "青山镇中心学校", "育才中学", "明德幼儿园", "东湖区第一小学",
    "西山区实验小学", "湖滨镇中学", "城关二小", "第七中学", "红星小学", "桃园镇初级中学",
]  # fmt: skip

# one voice per register, each able to carry either polarity
FRAMES: dict[str, list[str]] = {
    "parent": [
        "我家孩子在{school}读书，{clause}。",
        "{school}家长说两句：{clause}。",
        "作为{school}的家长，想说一下，{clause}。",
    ],
    "forum": [
        "#{school}# {clause}。",
        "听{school}的家长说，{clause}。",
        "{school}的事：{clause}，大家怎么看？",
    ],
    "hotline": ["来电人称，{school}{clause}。", "12345工单：市民来电表示，{school}{clause}。"],
    "news": ["记者了解到，{school}{clause}。", "本报讯 {school}{clause}。"],
    "notice": ["督查组在{school}检查时发现，{clause}。", "经核查，{school}{clause}。"],
    "publicity": ["{school}：{clause}。"],
}  # fmt: skip

# (topic, clause) — each follows a school's name
NEGATIVE_CLAUSES = [
    ("food", "的午饭经常是凉的，不少孩子下午就饿了"),
    ("food", "食堂的米饭一连几天夹生，菜里吃出过头发"),
    ("food", "的午餐一荤一素，荤菜只有几片肥肉，孩子吃不饱"),
    ("food", "学生吃完食堂的凉菜后腹泻，十几人去了医院"),
    ("food", "的营养餐牛奶临近保质期才发给学生"),
    ("facilities", "教学楼的厕所坏了三个月，孩子们只能憋到放学"),
    ("facilities", "教室的暖气一冬天都不热，孩子们写字手都冻僵了"),
    ("facilities", "宿舍的热水停了两周，学生没法洗澡"),
    ("facilities", "的教室窗户关不上，冷风一直往里灌"),
    ("facilities", "的操场跑道开裂起翘，学生上体育课常常绊倒"),
    ("facilities", "的饮水机滤芯一年没换，水有怪味"),
    ("teacher_conduct", "的班主任每次考完都当着全班念排名，孩子回家就哭"),
    ("teacher_conduct", "有老师让没交作业的孩子在走廊站了一节课"),
    ("teacher_conduct", "的老师在家长群里点名说某个孩子“没救了”"),
    ("teacher_conduct", "有老师暗示学生去他的补习班，不去的上课不被点名"),
    ("teacher_conduct", "的老师把孩子的作业本撕了扔在地上"),
    ("bullying", "一名孩子被同学堵在厕所要钱，持续了半个学期"),
    ("bullying", "有孩子被全班孤立、起外号，老师说是孩子之间的事"),
    ("bullying", "有学生被同学拍下视频发到群里取笑"),
    ("fees", "开学让每人交五百元资料费，没有收据"),
    ("fees", "说课后服务自愿，不报名的孩子却要写说明"),
    ("fees", "要求家长买指定的平板，一台三千多元"),
    ("safety", "门口放学时车辆乱停，一名学生被电动车撞倒"),
    ("safety", "的校车核载十九人，实际坐了三十多个孩子"),
    ("safety", "后门外的水塘没有围栏，常有学生在边上玩"),
    ("safety", "有学生体育课上晕倒，老师过了很久才叫校医"),
    ("admissions", "学区内的孩子没分到学位，有关系的外区孩子却进了"),
    ("admissions", "的报名材料退回三次，每次要补的都不一样"),
    ("other", "的学生每天作业写到十一点，睡眠严重不足"),
    ("other", "周末要求学生返校上课，说是自愿，不来的要家长写保证"),
    ("other", "课间不许学生出教室，十分钟只能坐着"),
    ("other", "的电话打了十几次都没人接，反映的问题一直没有回音"),
]
ORDINARY_CLAUSES = [
    ("food", "食堂每周公布菜谱，饭菜热乎可口，孩子们吃得很饱"),
    ("food", "的家长陪餐日，家长代表说饭菜干净、分量足"),
    ("food", "食堂为过敏的孩子单独做餐，家长很放心"),
    ("food", "开展食品安全宣传周，学生学习辨别“三无”食品"),
    ("food", "食堂推行明厨亮灶，家长在手机上就能看后厨"),
    ("facilities", "暑假翻新了厕所，装了洗手台和扶手"),
    ("facilities", "的教室装上了护眼灯和空调"),
    ("facilities", "新建的图书馆周末也向学生开放"),
    ("facilities", "之前漏水的教室已经修好，孩子们搬回去上课了"),
    ("teacher_conduct", "的班主任每天在群里说说孩子们的情况，家长很安心"),
    ("teacher_conduct", "的老师放学后义务给学习困难的孩子辅导"),
    ("teacher_conduct", "的老师考试后不公布排名，只和每个孩子谈自己的进步"),
    ("teacher_conduct", "的体育老师耐心教孩子跳绳，孩子进步很快"),
    ("teacher_conduct", "开展师德师风学习，老师们签订拒绝有偿补课承诺书"),
    ("bullying", "开了反欺凌讲座，法治副校长教孩子遇到欺负要马上告诉老师"),
    ("bullying", "开展防欺凌主题班会，同学们签了友善承诺书"),
    ("bullying", "的心理老师每周开放“悄悄话信箱”，孩子有烦恼可以倾诉"),
    ("fees", "公示了本学期收费项目和标准，账目清清楚楚"),
    ("fees", "为家庭困难的学生减免了伙食费"),
    ("fees", "退回了上学期多收的伙食费，还附了明细"),
    ("safety", "开展防溺水主题班会，提醒学生不私自下河游泳"),
    ("safety", "组织消防疏散演练，全校三分钟内撤到操场"),
    ("safety", "门口每天早上都有老师和保安护导，孩子过马路很安全"),
    ("safety", "请交警进校讲交通安全，孩子回家提醒家长戴头盔"),
    ("admissions", "公布了今年的招生划片范围和报名时间"),
    ("admissions", "的一年级新生报名全程网上办理，一小时就办完了"),
    ("other", "因台风停课一天，请家长在家照看好孩子"),
    ("other", "因线路检修周四停电，当天改为线上学习"),
    ("other", "举行秋季运动会，孩子们玩得很开心"),
    ("other", "的寒假从一月二十日开始，二月十七日开学"),
    ("other", "请问课后服务几点结束，五点半能接吗"),
    ("other", "的合唱团在全市比赛中拿了一等奖"),
]


def _read(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def composed_items(seed: int = SEED) -> list[dict[str, Any]]:
    """Every clause in the voice of every register that can speak it (training only)."""
    rng = random.Random(seed)
    items = []
    for negative, clauses in ((True, NEGATIVE_CLAUSES), (False, ORDINARY_CLAUSES)):
        for topic, clause in clauses:
            for register, frames in FRAMES.items():
                frame = rng.choice(frames)
                text = frame.format(school=rng.choice(SCHOOLS), clause=clause.lstrip("的"))
                if frame.startswith("{school}") or "{school}{clause}" in frame:
                    text = frame.format(school=rng.choice(SCHOOLS), clause=clause)
                items.append(
                    {
                        "text": text,
                        "negative": negative,
                        "topic": topic,
                        "register": register,
                        "script": "simplified",
                    }
                )
    return items


def _script(text: str, to_simplified: opencc.OpenCC) -> str:
    return "simplified" if to_simplified.convert(text) == text else "traditional"


def load(*, with_corrections: bool = True) -> list[dict[str, Any]]:
    """All items with ``id``, ``origin`` and ``split`` (train or test)."""
    to_simplified = opencc.OpenCC("t2s")
    items: list[dict[str, Any]] = []
    for origin, split, rows in (
        ("handwritten", "train", _read(TRAIN)),
        ("composed", "train", composed_items()),
        ("held_out", "test", _read(HELD_OUT)),
    ):
        for row in rows:
            items.append(
                {
                    **row,
                    "script": row.get("script") or _script(row["text"], to_simplified),
                    "origin": origin,
                    "split": split,
                }
            )
    if with_corrections:
        # a correction of a held-out text stays out of training: the report would flatter
        held_out = {item["text"] for item in items if item["split"] == "test"}
        items += [item for item in corrections() if item["text"] not in held_out]
    for index, item in enumerate(items):
        item.setdefault("id", f"s{index:04d}")
    return items


def corrections(path: Path | None = None) -> list[dict[str, Any]]:
    """Officers' corrections exported by the service (the latest mark per text wins),
    as training items."""
    to_simplified = opencc.OpenCC("t2s")
    latest: dict[str, dict[str, Any]] = {}
    for row in _read(path or CORRECTIONS):
        latest[row["text"]] = row
    return [
        {
            "text": row["text"],
            "negative": bool(row["negative"]),
            "topic": row.get("topic") or "other",
            "register": row.get("register") or "forum",
            "script": _script(row["text"], to_simplified),
            "origin": "correction",
            "split": "train",
        }
        for row in latest.values()
    ]


def summary(items: list[dict[str, Any]]) -> dict[str, Any]:
    counts: Counter[tuple[str, str, str]] = Counter(
        (item["split"], item["register"], "negative" if item["negative"] else "not")
        for item in items
    )
    return {
        "items": len(items),
        "negative": sum(bool(item["negative"]) for item in items),
        "by_origin": dict(Counter(item["origin"] for item in items)),
        "by_script": dict(Counter(item["script"] for item in items)),
        "by_split_register_label": {" ".join(key): n for key, n in sorted(counts.items())},
    }


def main() -> None:
    print(json.dumps(summary(load()), ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
