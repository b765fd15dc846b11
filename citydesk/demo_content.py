"""What the demo city writes: story templates in the register of school publicity work,
public-opinion items for the feed, and photos drawn on the fly."""

from __future__ import annotations

import io
import random

from PIL import Image, ImageDraw

# (category, title template, body template); {school} is the school's name
STORY_TEMPLATES: list[tuple[str, str, str]] = [
    (
        "工作动态",
        "{school}开展“开学第一课”主题教育活动",
        "{date}，{school}组织全体师生开展“开学第一课”主题教育活动。活动围绕爱国主义教育、安全教育和行为习惯养成展开，"
        "校长作专题讲话，各班级随后召开主题班会，引导学生明确新学期目标。",
    ),
    (
        "主题宣传",
        "{school}举行“学习二十大 永远跟党走”主题演讲比赛",
        "为深入学习宣传党的二十大精神，{school}于{date}举行主题演讲比赛。来自各年级的二十余名选手结合身边故事，"
        "讲述新时代的变化与成长，评委从内容、表达、台风等方面进行评分。",
    ),
    (
        "典型人物",
        "扎根乡村三十年——记{school}教师的育人故事",
        "在{school}，有一位扎根乡村教育三十年的老师。她每天最早到校、最晚离校，坚持家访走遍全村，"
        "用耐心和爱心陪伴一届又一届学生成长，多名学生考入重点高中。",
    ),
    (
        "典型经验",
        "{school}“双减”背景下课后服务提质增效的实践",
        "{school}立足“双减”要求，构建“基础托管+特色课程”的课后服务体系，开设书法、合唱、篮球、科创等二十余门课程，"
        "学生参与率达到98%，家长满意度持续提升。",
    ),
    (
        "工作动态",
        "{school}组织开展防溺水安全教育专题活动",
        "夏季来临，{school}于{date}组织开展防溺水安全教育专题活动，通过观看警示教育片、签订安全承诺书、"
        "致家长一封信等方式，筑牢学生暑期安全防线。",
    ),
    (
        "政策解读",
        "一图读懂：{school}2026年秋季招生政策问答",
        "针对家长关心的招生范围、报名时间、所需材料等问题，{school}整理发布秋季招生政策问答，"
        "并开通咨询电话，安排专人解答家长疑问，确保招生工作公开透明。",
    ),
    (
        "工作动态",
        "{school}举行秋季运动会",
        "{date}，{school}第十五届秋季运动会隆重开幕。运动会设田径、趣味接力、亲子项目等二十个项目，"
        "全校一千余名师生参加，展现了学校体育工作成果和学生积极向上的精神风貌。",
    ),
    (
        "主题宣传",
        "{school}开展反校园欺凌主题教育讲座",
        "为预防和减少校园欺凌，{school}邀请法治副校长开展专题讲座，结合典型案例讲解欺凌的危害和法律责任，"
        "引导学生学会自我保护、友善相处。",
    ),
    (
        "工作动态",
        "{school}开展消防应急疏散演练",
        "{date}，{school}开展消防应急疏散演练。警报响起后，全体师生按照预定路线有序撤离，"
        "仅用三分钟便全部到达安全区域，随后消防员现场讲解灭火器使用方法。",
    ),
    (
        "典型经验",
        "{school}以劳动教育促进学生全面发展",
        "{school}开辟校园劳动实践基地，将劳动教育纳入课程体系，各班认领责任田，学生参与播种、管理、收获全过程，"
        "在劳动中学会合作、体会收获。",
    ),
    (
        "工作动态",
        "{school}召开家长委员会会议 共商家校共育",
        "{date}，{school}召开家长委员会会议，通报学校近期重点工作，听取家长对食堂管理、课后服务、"
        "校园安全等方面的意见建议，共同推动家校协同育人。",
    ),
    (
        "主题宣传",
        "{school}举办读书节活动 营造书香校园",
        "{school}第八届读书节开幕，活动包括经典诵读、好书推荐、读书小报评比等环节，"
        "引导学生多读书、读好书，营造浓厚的书香校园氛围。",
    ),
]

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
