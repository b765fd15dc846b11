"""The labelled school-domain set the classifier is trained on: template items with varied
slots plus the hand-written items in ``data/handwritten.jsonl``, with a fixed, stratified
held-out split. ``python -m services.sentiment.dataset`` rewrites ``data/labelled.jsonl``."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import opencc

DATA = Path(__file__).parent / "data"
LABELLED = DATA / "labelled.jsonl"
HANDWRITTEN = DATA / "handwritten.jsonl"
HELD_OUT_SHARE = 0.25
SEED = 20240901

SLOTS: dict[str, list[str]] = {
    "school": [
        "城南小学",
        "实验中学",
        "第三中学",
        "青山镇中心学校",
        "希望小学",
        "育才中学",
        "明德幼儿园",
        "东湖区第一小学",
        "西山区实验小学",
        "湖滨镇中学",
        "城关二小",
        "职业技术学校",
        "第七中学",
        "红星小学",
        "新华路小学",
        "桃园镇初级中学",
    ],
    "county": ["东湖区", "西山区", "南岭县", "北川县", "河口区", "青山县", "江滨新区"],
    "time": ["昨天中午", "今天上午", "上周五", "前天下午", "3月12日", "本周一", "昨晚", "近日"],
    "count": ["十几名", "20多名", "多名", "30余名", "几个", "一个班的"],
    "grade": ["三年级", "五年级", "初一", "初二", "高一", "一年级", "六年级", "高二"],
    "teacher": ["班主任", "数学老师", "体育老师", "英语老师", "副校长", "语文老师", "生活老师"],
    "money": ["200", "350", "500", "800", "1200", "1500"],
    "pretext": ["资料费", "补课费", "空调费", "校服费", "赞助费", "择校费", "服务费", "桌椅费"],
    "place": ["村外的河塘", "水库", "江边", "废弃的鱼塘", "小河"],
    "year": ["2023", "2024", "2025"],
}

NEGATIVE = {
    "food": [
        "{time}，{school}{grade}{count}学生在食堂吃完午饭后出现呕吐、腹泻症状，已送医院治疗，家长怀疑食物中毒。",
        "{school}食堂的饭菜里吃出了虫子，孩子回家说饭菜是馊的，学校到底有没有人管？",
        "投诉：{school}食堂使用过期食材，价格贵分量少，学生天天吃不饱。",
        "#{school}食物中毒# {count}孩子上吐下泻，学校还在瞒着家长，太气人了！",
        "家长反映{school}午餐供应商卫生条件极差，送来的饭菜经常变质发臭。",
    ],
    "fees": [
        "{school}以{pretext}名义向每名学生收取{money}元，没有任何收据，这是不是乱收费？",
        "家长反映：{school}强制学生购买教辅资料，每学期要交{money}元，不买就不让上课。",
        "举报{school}违规收取{pretext}，每人{money}元，还说是自愿的，其实不交就被老师点名。",
        "{school}{teacher}在家长群里收{pretext}{money}元，没有收费依据，家长敢怒不敢言。",
    ],
    "teacher_conduct": [
        "{school}{teacher}上课时打学生耳光，孩子脸都肿了，家长要求严肃处理。",
        "{time}，{school}{grade}一名学生被{teacher}体罚，罚站一整天不让吃饭。",
        "{school}{teacher}当着全班辱骂学生是废物，孩子现在不敢去上学。",
        "实名举报{school}{teacher}收受家长红包、搞有偿补课，不补课的孩子被穿小鞋。",
        "网传视频显示，{school}{teacher}用脚踢倒在地上的学生，引发网友愤怒。",
    ],
    "bullying": [
        "{school}{grade}一名学生长期被同学欺负、勒索钱财，还被拍视频发到网上，学校却说是开玩笑。",
        "{time}，{school}几名学生在厕所围殴一名{grade}同学，被打学生头部受伤住院。",
        "我家孩子在{school}被同学霸凌，被扒衣服拍照，学校至今没有处理结果。",
        "#{school}校园霸凌# 视频里女生被按在地上扇耳光，打人的还在笑，必须严惩！",
    ],
    "safety": [
        "{time}，{county}{place}发生一起溺水事故，{school}两名学生私自下河游泳不幸溺亡。",
        "{school}门口接送车辆乱停乱放，{time}一名{grade}学生被车撞伤，家长呼吁加强管理。",
        "{school}校车严重超载，一辆七座车挤了十几个孩子，太危险了。",
        "{time}，{school}一名{grade}学生在课间从楼梯摔下骨折，学校未及时通知家长。",
        "{school}宿舍{time}发生火灾，消防通道被堵，多名学生被困，所幸无人死亡。",
    ],
    "facilities": [
        "{school}教学楼墙体开裂、天花板掉落，{time}砸伤一名{grade}学生。",
        "{school}宿舍漏雨、厕所臭气熏天，反映多次都没人修。",
        "{school}新铺的操场跑道有刺鼻气味，{count}孩子流鼻血、起皮疹。",
        "{school}是危房还在上课，墙上的裂缝能塞进手指，家长每天提心吊胆。",
    ],
    "admissions": [
        "{school}招生暗箱操作，学区内的孩子上不了学，有关系的外区孩子却能入学。",
        "{county}{year}年小学摇号结果不公平，家长质疑有内定名额。",
        "{school}违规组织入学考试，按成绩和交钱多少分进重点班。",
        "{school}收取{money}元择校费才给学位，义务教育阶段还能这样吗？",
    ],
    "other": [
        "{county}教育局对家长反映的问题一拖再拖，电话打了十几次都没人管，简直不作为。",
        "{school}拖欠代课老师工资半年，老师们只能集体上访。",
        "{school}强迫学生假期去工厂实习，每天干十个小时，这是变相童工。",
    ],
}

ORDINARY = {
    "food": [
        "{county}市场监管局对{school}食堂开展食品安全检查，食堂各项管理规范，获得检查组好评。",
        "{school}召开家长会，介绍学校午餐营养配餐情况，家长代表走进食堂参观。",
        "{school}开展食品安全宣传周活动，同学们学习辨别“三无”食品。",
        "{school}食堂推行“明厨亮灶”，家长可以在手机上实时查看后厨操作。",
    ],
    "fees": [
        "{school}公示本学期收费项目及标准，严格执行“一费制”，接受家长监督。",
        "{county}教育局开展规范办学行为专项检查，{school}收费公开透明，无违规收费。",
        "{school}为{count}家庭经济困难学生发放助学金，共计{money}元。",
    ],
    "teacher_conduct": [
        "{school}{teacher}荣获市级优秀教师称号，从教二十年关爱每一名学生。",
        "{school}召开师德师风建设专题会议，全体教师签订拒绝有偿补课承诺书。",
        "{school}{teacher}带领{grade}学生开展研学活动，深受学生喜爱。",
        "{school}举行新教师入职宣誓仪式，青年教师立志做有温度的老师。",
    ],
    "bullying": [
        "{school}举办预防校园欺凌专题讲座，法治副校长为师生讲解如何识别和应对欺凌。",
        "{school}开展防欺凌主题班会，{grade}同学们共同签署友善校园承诺书。",
        "{county}教育局部署校园欺凌防治工作，要求各校建立排查和报告机制。",
        "{school}心理老师走进{grade}课堂，教孩子们遇到欺凌时如何求助。",
    ],
    "safety": [
        "{school}开展“防溺水”安全教育主题班会，提醒学生不私自下河游泳。",
        "{school}组织全校师生开展消防应急疏散演练，{count}班级三分钟内安全撤离。",
        "{school}开展交通安全进校园活动，交警为学生讲解交通规则。",
        "{time}，{school}举行防溺水安全教育讲座，{grade}学生学习溺水自救知识。",
        "{county}教育局开展校园安全大检查，{school}各项安全措施落实到位。",
        "{school}开展地震应急演练，师生有序撤离到操场。",
    ],
    "facilities": [
        "{school}新教学楼正式投入使用，配备智慧教室和标准化实验室。",
        "{school}完成校舍加固改造工程，通过安全验收。",
        "{school}新建的塑胶操场经检测环保达标，{time}正式向学生开放。",
        "{county}投入资金改善{school}办学条件，新建学生宿舍和食堂。",
    ],
    "admissions": [
        "{county}教育局发布{year}年义务教育招生政策，坚持免试就近入学，全程公开摇号。",
        "{school}{year}年秋季招生简章发布，招生计划和划片范围向社会公示。",
        "{county}{year}年民办学校招生摇号在公证人员监督下顺利完成。",
    ],
    "other": [
        "{school}举行秋季运动会，{grade}同学们奋力拼搏，赛出风格。",
        "{school}学生在全市科技创新大赛中获得一等奖。",
        "{time}，{school}举行读书节开幕式，{grade}学生分享阅读心得。",
        "{county}教育局召开{year}年教育宣传工作会议，部署全年宣传任务。",
        "{school}开展志愿服务活动，{count}学生走进敬老院慰问老人。",
    ],
}

CASUAL_SUFFIX = {
    True: ["", "", "真的气死了！", "求扩散！", "@教育局 管管吧", "家长们都很愤怒。"],
    False: ["", "", "点赞！", "为学校打call～", "孩子们收获满满。", ""],
}


def _fill(template: str, rng: random.Random) -> str:
    return template.format(**{name: rng.choice(values) for name, values in SLOTS.items()})


def template_items(rng: random.Random, per_template: int = 5) -> Iterator[dict[str, Any]]:
    """Items from every template with varied slots, some in a casual register."""
    for negative, table in ((True, NEGATIVE), (False, ORDINARY)):
        for topic, templates in table.items():
            for template in templates:
                seen: set[str] = set()
                for _ in range(per_template):
                    text = _fill(template, rng) + rng.choice(CASUAL_SUFFIX[negative])
                    if text in seen:
                        continue
                    seen.add(text)
                    register = (
                        "weibo"
                        if text.startswith("#") or text.endswith(("！", "～"))
                        else ("complaint" if negative else "news")
                    )
                    yield {"text": text, "negative": negative, "topic": topic, "register": register}


def build(seed: int = SEED) -> list[dict[str, Any]]:
    """Template and hand-written items, a share rendered in Traditional script, with ids
    and a stratified held-out split."""
    rng = random.Random(seed)
    to_traditional = opencc.OpenCC("s2t")
    items: list[dict[str, Any]] = []
    for item in template_items(rng):
        traditional = rng.random() < 0.15
        text = to_traditional.convert(item["text"]) if traditional else item["text"]
        items.append(
            {
                **item,
                "text": text,
                "script": "traditional" if traditional else "simplified",
                "origin": "template",
            }
        )
    for line in HANDWRITTEN.read_text(encoding="utf-8").splitlines():
        if line.strip():
            item = json.loads(line)
            simplified = opencc.OpenCC("t2s").convert(item["text"]) == item["text"]
            items.append(
                {
                    **item,
                    "script": "simplified" if simplified else "traditional",
                    "origin": "handwritten",
                }
            )
    for index, item in enumerate(items):
        item["id"] = f"s{index:04d}"
    for negative in (True, False):
        stratum = [item for item in items if item["negative"] is negative]
        rng.shuffle(stratum)
        cut = round(len(stratum) * HELD_OUT_SHARE)
        for position, item in enumerate(stratum):
            item["split"] = "test" if position < cut else "train"
    return items


def load() -> list[dict[str, Any]]:
    """The committed labelled set."""
    return [json.loads(line) for line in LABELLED.read_text(encoding="utf-8").splitlines() if line]


def main() -> None:
    items = build()
    with LABELLED.open("w", encoding="utf-8") as out:
        for item in items:
            keys = ("id", "text", "negative", "topic", "register", "script", "origin", "split")
            out.write(json.dumps({k: item[k] for k in keys}, ensure_ascii=False) + "\n")
    negatives = sum(item["negative"] for item in items)
    print(f"wrote {len(items)} items ({negatives} negative) to {LABELLED}")


if __name__ == "__main__":
    main()
