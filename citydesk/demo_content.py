"""What the demo city writes: stories composed from parts in the register of school publicity work,
public-opinion items for the feed, and photos drawn on the fly."""

from __future__ import annotations

import io
import random

from PIL import Image, ImageDraw

# ---- stories composed from parts -------------------------------------------------------
# Each theme has several titles, openings, details, voices and closings; a story takes one
# opening, a few details in a random order, maybe a voice and a closing, with its own
# numbers, grades and people, so two schools' stories on one theme read differently and
# only the copies the demo plants on purpose look alike.
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


THEMES: list[dict[str, object]] = [
    {
        "category": "工作动态",
        "titles": [
            "{school}举行第{nth}届秋季运动会",
            "运动场上展风采——{school}秋季运动会侧记",
            "{school}秋季运动会圆满落幕",
        ],
        "openings": [
            "{date}，{school}第{nth}届秋季运动会在学校田径场开幕。",
            "秋高气爽，{school}于{date}迎来一年一度的秋季运动会。",
            "{date}上午，伴随着运动员进行曲，{school}秋季运动会拉开帷幕。",
        ],
        "details": [
            "本届运动会共设{n}个比赛项目，除短跑、跳远、跳高等传统项目外，还增设了{fun}。",
            "{grade}的{count}名学生组成彩旗方阵入场，步伐整齐、口号响亮。",
            "开幕式上，{role}{person}宣布运动会开幕，并勉励同学们赛出风格、赛出水平。",
            "{grade}男子{meters}米决赛中，{kid}同学以{seconds}秒的成绩打破校纪录。",
            "看台上的啦啦队自制标语和加油板，为每一名运动员呐喊助威。",
            "学校还邀请{parents}名家长参与亲子接力，赛场内外笑声不断。",
            "医护志愿者和{teachers}名教师裁判全程保障，比赛安全有序。",
        ],
        "voices": [
            "“跑完最后一棒的时候，全班同学都冲上来抱住了我。”{grade}学生{kid}说。",
            "“运动会不只比成绩，更是一堂团结协作的课。”{role}{speaker}说。",
        ],
        "closings": [
            "经过{days}天的角逐，{classes}个班级获评“体育道德风尚奖”。",
            "运动会在欢快的闭幕式中落下帷幕，学校将把优秀项目纳入大课间活动。",
            "赛后，学校对各项成绩进行了汇总，将作为推荐参加区级比赛的依据。",
        ],
        "fun": ["跳长绳和拔河", "袋鼠跳和两人三足", "趣味投篮和障碍接力", "滚铁环和踢毽子"],
    },
    {
        "category": "主题宣传",
        "titles": [
            "{school}开展“开学第一课”主题教育活动",
            "新学期从这里出发——{school}上好开学第一课",
            "{school}以“开学第一课”开启新学期",
        ],
        "openings": [
            "{date}，{school}组织全体师生开展“开学第一课”主题教育活动。",
            "新学期伊始，{school}于{date}在操场举行“开学第一课”。",
            "{date}一早，{school}的{count}余名学生在各自教室里上了新学期的第一课。",
        ],
        "details": [
            "{role}{person}以“{motto}”为题，讲述了学校一年来的变化。",
            "各班随后召开主题班会，{grade}学生分享了暑假里的社会实践经历。",
            "安全教育环节，民警{person}结合案例讲解交通、防溺水和防诈骗知识。",
            "学校为新入学的{count}名一年级新生举行了入学礼，高年级学生为他们佩戴校徽。",
            "老师们带领学生制定新学期计划，把目标写在“心愿卡”上贴在教室后墙。",
            "升旗仪式上，{grade}学生{kid}作了题为《{motto}》的国旗下讲话。",
        ],
        "voices": [
            "“我希望这个学期能读完{books}本书。”{grade}学生{kid}说。",
            "“开学第一课要让孩子们知道为什么学、怎样学。”{role}{speaker}说。",
        ],
        "closings": [
            "学校表示，将把主题教育贯穿整个学期，做到月月有主题、周周有活动。",
            "活动在全体师生齐唱校歌中结束。",
            "当天下午，各年级陆续开展了行为习惯养成训练。",
        ],
        "motto": ["强国有我", "做最好的自己", "向阳而生", "从今天出发", "习惯成就未来"],
    },
    {
        "category": "工作动态",
        "titles": [
            "{school}开展消防应急疏散演练",
            "警铃响起之后——{school}消防演练纪实",
            "{school}联合消防救援站开展安全演练",
        ],
        "openings": [
            "{date}，{school}开展消防应急疏散演练。",
            "{date}上午{hour}点，{school}教学楼内警报声骤然响起。",
            "为提高师生应急避险能力，{school}于{date}联合辖区消防救援站开展演练。",
        ],
        "details": [
            "全体师生按照预定路线用湿毛巾捂住口鼻、弯腰快速撤离，仅用{minutes}分{seconds2}秒全部到达操场。",
            "各楼层由{teachers}名教师分段负责疏导，确保楼梯口不拥挤、不推搡。",
            "消防员{person}现场演示了灭火器的使用方法，{grade}的学生代表上前亲手体验。",
            "演练结束后，{role}{person}对各班撤离用时进行了点评，指出了两处需要改进的环节。",
            "学校还在{grade}开展了火场逃生知识问答，答对的学生获得了安全小卫士徽章。",
            "消防车开进校园，学生们第一次近距离认识了云梯和各类救援器材。",
        ],
        "voices": [
            "“原来捂住口鼻、低姿前进这么重要。”{grade}学生{kid}说。",
            "“演练多流汗，遇险少流血。”消防员{speaker}告诉同学们。",
        ],
        "closings": [
            "学校表示，每学期至少开展两次应急演练，把安全教育落到实处。",
            "演练后，学校对消防通道和器材进行了全面检查。",
            "此次演练检验了学校应急预案的可操作性。",
        ],
    },
    {
        "category": "典型经验",
        "titles": [
            "{school}“双减”背景下课后服务提质增效",
            "{school}课后服务有了“新菜单”",
            "{courses}门课程让课后时光更丰富——{school}课后服务探索",
        ],
        "openings": [
            "{school}立足“双减”要求，构建“基础托管+特色课程”的课后服务体系。",
            "每天下午三点半以后，是{school}学生最期待的时光。",
            "本学期以来，{school}对课后服务进行了全面升级。",
        ],
        "details": [
            "学校开设{clubs}等{courses}门课程，学生按兴趣自主选课。",
            "{grade}的作业辅导时段由学科教师轮值，确保学生在校完成书面作业。",
            "学校引入{parents}名家长志愿者和社区辅导员，弥补师资不足。",
            "课后服务参与率达到{percent}%，家长满意度调查中好评率{percent2}%。",
            "学期末举办课后服务成果展，{kid}等学生的作品在校园里展出。",
            "学校建立课程评价机制，每月根据学生反馈调整一次课程安排。",
        ],
        "voices": [
            "“孩子回家不用再赶作业，周末也有时间出去走走了。”家长{speaker}说。",
            "“课后服务要让每个孩子都找到喜欢的事。”{role}{speaker}说。",
        ],
        "closings": [
            "下一步，学校将继续丰富课程供给，推动课后服务提质增效。",
            "学校的做法已在{county}范围内交流推广。",
            "学校计划下学期再增设两门科创类课程。",
        ],
        "clubs": [
            "书法、合唱、篮球、科创",
            "围棋、舞蹈、足球、编程",
            "国画、朗诵、乒乓球、航模",
            "陶艺、口琴、排球、机器人",
        ],
    },
    {
        "category": "主题宣传",
        "titles": [
            "{school}举办第{nth}届读书节",
            "书香浸润校园——{school}读书节活动掠影",
            "{school}读书节：让阅读成为习惯",
        ],
        "openings": [
            "{date}，{school}第{nth}届读书节开幕。",
            "{school}以“{motto}”为主题，于{date}启动本年度读书节。",
            "走进{school}，随处可见捧着书本的学生。",
        ],
        "details": [
            "读书节设经典诵读、好书推荐、读书小报评比等{n}项活动。",
            "{grade}各班开展“图书漂流”，共交换图书{books2}册。",
            "学校邀请儿童文学作家{person}走进校园，与学生面对面交流创作故事。",
            "图书馆延长开放时间，每天中午向{grade}学生开放借阅。",
            "亲子共读环节吸引了{parents}个家庭参与，家长和孩子一起写下读书心得。",
            "{kid}同学一学期读完了{books}本书，被评为“阅读之星”。",
        ],
        "voices": [
            "“读书让我认识了一个更大的世界。”{grade}学生{kid}说。",
            "“阅读是最好的家庭作业。”{role}{speaker}说。",
        ],
        "closings": [
            "读书节将持续一个月，闭幕时评选书香班级和书香家庭。",
            "学校将以读书节为契机，推进整本书阅读教学。",
            "活动结束后，学生们的读书笔记被装订成册，放进了学校图书馆。",
        ],
        "motto": ["阅读点亮人生", "与书为友", "书香满园", "悦读越美"],
    },
    {
        "category": "工作动态",
        "titles": [
            "{school}召开家长委员会会议",
            "家校同心 共育未来——{school}家委会会议侧记",
            "{school}听取家长对学校工作的意见建议",
        ],
        "openings": [
            "{date}，{school}召开本学期家长委员会会议。",
            "{date}下午，{school}会议室里坐满了来自各年级的家长代表。",
            "为推进家校协同育人，{school}于{date}召开家委会全体会议。",
        ],
        "details": [
            "{role}{person}通报了学校近期在课后服务、食堂管理和校园安全方面的工作。",
            "{reps}名家长代表围绕{topic}提出了意见建议。",
            "学校现场答复了家长关心的{n}个问题，其余问题承诺一周内书面回复。",
            "会上，{grade}家委会成员介绍了班级开展亲子志愿服务的经验。",
            "家长代表一同参观了新改造的食堂后厨和学生宿舍。",
            "学校与家委会商定，每月设立一次“校长接待日”。",
        ],
        "voices": [
            "“学校把我们的建议当回事，我们也更愿意参与。”家长{speaker}说。",
            "“家长是学校最重要的合作伙伴。”{role}{speaker}说。",
        ],
        "closings": [
            "会议还选举产生了新一届家委会常务委员。",
            "学校表示，将把家长意见落实情况在下次会议上逐项通报。",
            "会后，学校对家长提出的建议进行了梳理分工。",
        ],
        "topic": ["放学接送秩序", "食堂菜品", "课后服务课程", "作业量", "校服采购"],
    },
    {
        "category": "典型人物",
        "titles": [
            "扎根讲台{years}年——记{school}教师{teacher}",
            "{school}教师{teacher}：把爱写在讲台上",
            "身边的好老师：{school}{teacher}",
        ],
        "openings": [
            "在{school}，{teacher}老师已经在讲台上站了{years}年。",
            "每天早上七点，{school}的{teacher}老师总是第一个走进教室。",
            "提起{teacher}老师，{school}的学生和家长都竖起大拇指。",
        ],
        "details": [
            "{years}年来，她先后带过{classes}届毕业班，多名学生考入重点高中。",
            "为了一名生病住院的学生，他利用周末补课，坚持了整整{weeks}周。",
            "她坚持家访，走遍了学区内的{count}户学生家庭。",
            "他自费购买图书，在教室里建起了有{books2}册藏书的班级图书角。",
            "在{grade}的数学课上，她把生活中的问题编进课堂，学生们越学越有兴趣。",
            "近年来，{teacher}老师先后获得市级优秀教师、区级师德标兵等称号。",
        ],
        "voices": [
            "“{teacher}老师不只教我们知识，还教我们怎样做人。”已毕业的学生{kid}说。",
            "“能陪着孩子们长大，就是我最大的幸福。”{teacher}说。",
        ],
        "closings": [
            "如今，{teacher}老师仍然每天坚守在教学一线。",
            "学校号召全体教师向{teacher}老师学习。",
            "在她的带动下，学校青年教师成长很快。",
        ],
    },
    {
        "category": "主题宣传",
        "titles": [
            "{school}开展反校园欺凌主题教育",
            "向欺凌说“不”——{school}法治教育进课堂",
            "{school}邀请法治副校长开讲座",
        ],
        "openings": [
            "为预防和减少校园欺凌，{school}于{date}开展主题教育活动。",
            "{date}，{school}法治副校长{person}走进学校报告厅。",
            "{school}本周以“友善相处 拒绝欺凌”为主题开展系列教育活动。",
        ],
        "details": [
            "讲座结合{n}个典型案例，讲解欺凌行为的危害和应承担的法律责任。",
            "{grade}学生自编自演情景剧，再现了遭遇欺凌时如何求助。",
            "学校公布了心理咨询室开放时间和匿名求助信箱。",
            "班主任逐一与班上{pupils}名学生谈心，排查同学间的矛盾纠纷。",
            "学校向家长发放告知书，提醒家长关注孩子的情绪变化。",
            "活动中，学生们在“友善承诺墙”上签下了自己的名字。",
        ],
        "voices": [
            "“遇到欺负不能忍着，要告诉老师和家长。”{grade}学生{kid}说。",
            "“每个孩子都应该在安全、友善的环境中成长。”{role}{speaker}说。",
        ],
        "closings": [
            "学校将建立欺凌防治长效机制，定期开展排查。",
            "活动结束后，学校还组织了心理健康主题班会。",
            "学校表示，对欺凌行为坚持零容忍。",
        ],
    },
    {
        "category": "典型经验",
        "titles": [
            "{school}以劳动教育促进学生全面发展",
            "小菜园里的大课堂——{school}劳动教育探索",
            "{school}：让学生在劳动中成长",
        ],
        "openings": [
            "{school}开辟了{area}平方米的校园劳动实践基地。",
            "走进{school}的“开心农场”，一畦畦蔬菜长势喜人。",
            "近年来，{school}把劳动教育纳入课程体系，每周安排一节劳动课。",
        ],
        "details": [
            "各班认领责任田，{grade}学生参与播种、浇水、除草和收获全过程。",
            "学校聘请{helpers}名有经验的村民担任劳动课校外辅导员。",
            "收获的{crop}被送进学校食堂，成为同学们午餐桌上的一道菜。",
            "学校还设立了“家务劳动打卡”，每学期评选劳动小能手{n}名。",
            "劳动课上，{kid}同学学会了用竹竿给黄瓜搭架子。",
            "学校把劳动表现纳入学生综合素质评价。",
        ],
        "voices": [
            "“自己种的菜，吃起来特别香。”{grade}学生{kid}说。",
            "“劳动教育要让学生出力流汗，也要让他们动脑思考。”{role}{speaker}说。",
        ],
        "closings": [
            "学校的劳动教育经验在{county}劳动教育现场会上作了交流。",
            "下一步，学校将建设校园气象站和手工坊，拓展劳动项目。",
            "学校表示，将继续完善劳动教育评价体系。",
        ],
        "crop": ["萝卜和青菜", "南瓜和玉米", "番茄和黄瓜", "土豆和白菜"],
    },
    {
        "category": "政策解读",
        "titles": [
            "{school}秋季招生政策问答",
            "家长关心的入学问题，{school}这样答",
            "{school}公布招生范围和报名安排",
        ],
        "openings": [
            "针对家长关心的招生问题，{school}整理发布了秋季招生政策问答。",
            "{date}，{school}在校门口和学校网站同步公布了本年度招生方案。",
            "招生季临近，{school}开通{lines}条咨询电话，专人解答家长疑问。",
        ],
        "details": [
            "今年学校计划招收一年级新生{count}人，编{classes}个教学班。",
            "报名采用网上登记与现场审核相结合，现场审核安排在{month}月{day}日至{day2}日。",
            "家长需准备户口簿、房产证明或居住证等材料，学校提供材料清单下载。",
            "对随迁子女、烈士子女等群体，学校按政策予以保障。",
            "学校明确表示，招生过程中不举行任何形式的考试和测评。",
            "学区范围与去年相比没有调整，具体以区教育局公布的学区图为准。",
        ],
        "voices": [
            "“材料清单一看就懂，少跑了好几趟。”家长{speaker}说。",
            "“招生工作要做到阳光、公平、透明。”{role}{speaker}说。",
        ],
        "closings": [
            "学校招生咨询电话工作日全天开通。",
            "招生结果将在学校网站和校门口公示栏同步公示。",
            "学校提醒家长通过官方渠道获取招生信息，谨防上当受骗。",
        ],
    },
]


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
    }  # fmt: skip
    for pool in ("fun", "motto", "clubs", "topic", "crop"):
        if pool in theme:
            slots[pool] = rng.choice(theme[pool])  # type: ignore[arg-type]

    def fill(text: str) -> str:
        return text.format(**slots)

    details: list[str] = list(theme["details"])  # type: ignore[call-overload]
    parts = [rng.choice(theme["openings"])]  # type: ignore[call-overload]
    parts += rng.sample(details, k=rng.randint(4, min(6, len(details))))
    if rng.random() < 0.7:
        parts.insert(rng.randint(2, len(parts)), rng.choice(theme["voices"]))  # type: ignore[call-overload]
    parts.append(rng.choice(theme["closings"]))  # type: ignore[call-overload]
    paragraphs, current = [], ""
    for sentence in parts:
        current += fill(sentence)
        if len(current) > 90 and rng.random() < 0.6:
            paragraphs.append(current)
            current = ""
    if current:
        paragraphs.append(current)
    title = fill(rng.choice(theme["titles"]))  # type: ignore[call-overload]
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
