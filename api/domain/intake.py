"""Scope classification of a citizen message (受理范围 / 不予受理范围) and routing to a handling unit.

Safety first: emergencies and threat wording are caught by explicit rules before any model speaks, so a
model's mistake can never hide a fire. Then a character n-gram classifier (scikit-learn, trained on the
labelled intake set) names the category or the exclusion, and a router scores units by duty keywords,
place names (属地管理) and a second classifier.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data"
CATEGORIES = ("咨询", "求助", "投诉", "举报", "建议")
EXCLUSIONS = ("litigation", "emergency", "military", "secret", "no_target", "out_of_jurisdiction",
              "designated_channel")

RULES = {  # the seed article each decision rests on
    "accepted": "《杭州市12345政务服务便民热线管理办法（草案）》第八条 受理范围；宝建〔2021〕11号 附件4 第二条",
    "litigation": "第九条（一）已经或者依法应当通过诉讼、仲裁、行政复议等途径解决的",
    "emergency": "第九条（二）应当通过110、119、120、122等紧急热线处理的",
    "military": "第九条（三）涉及国防、军队事务的",
    "secret": "第九条（四）涉及国家秘密、商业秘密、个人隐私的",
    "no_target": "第九条（五）无具体诉求对象、内容不清的",
    "out_of_jurisdiction": "第九条（六）不属于本行政区域管辖的",
    "designated_channel": "第九条（七）依法应当由其他专门渠道受理的",
}
ADVICE = {
    "litigation": "该事项已进入或应当通过诉讼、仲裁、行政复议解决，请向受理的法院、仲裁机构或复议机关咨询进展。",
    "emergency": "情况紧急，请立即拨打 110（报警）、119（火警）或 120（急救）；"
                 "燃气泄漏请先离开现场再拨打燃气抢修电话。",
    "military": "涉及军队事务，请向相关部队或军队信访部门反映。",
    "secret": "涉及国家秘密的事项请通过保密渠道向有关机关反映，请勿在热线中透露具体内容。",
    "no_target": "请补充具体的对象、地点和诉求（例如哪个小区、哪个单位、希望怎样解决），以便我们受理。",
    "out_of_jurisdiction": "该事项不属于本区管辖，请拨打事发地的 12345 热线反映。",
    "designated_channel": "该事项有专门受理渠道（如纪检监察 12388、法院、检察院），请通过相应渠道反映。",
}

_NOW = (r"((?<!到)现在(?!想问|想咨询|想了解|想知道|想请问|要问|请问|咨询|问一下|想办|要办|需要办|去哪)"
        r"|正在|正拿|马上|赶紧|刚刚|刚才|刚|还在|一直在|此刻|救命|快来|站在|已经有人|还没停|在跑"
        r"|在哭|在扑腾|突然|躲在|已经在)")
_PAST = (r"(上周|上礼拜|上个礼拜|上星期|上回|前阵子|前些天|几天前|那天|那晚"
         r"|上个月|去年|前几天|前天|昨天|之前|以前|当时|已经处理|早就|那次|上次|过两次|过几次|好几次|几次了"
         r"|遇到|万一|如果|假如|要是|逼急了|再不|再敢|再这样|不然|否则|下回|下次|我就|演练"
         r"|怎么逃生)")  # past or hypothetical
# Danger words: each pattern alone describes a situation for 110 / 119 / 120.
EMERGENCY_PATTERNS = [
    r"(着火|起火|失火|火灾|烧起来|浓烟|(楼上|楼下|家里|屋里|房子|窗户|楼道|车里|厨房).{0,4}(冒.{0,2}烟|烧焦)|火苗|冒火花"
    r"|(?<![要快])爆炸|(?<![气爆])炸了|臭鸡蛋味|煤气味|燃气味"
    r"|喊救命|(全是|都是|满是|一股|好多|很多|好大的?)烟|火警报警器|烟越来越(大|浓)"
    r"|(电池|电瓶|电瓶车|电动车|充电器|插座|电线|配电箱).{0,4}(冒.{0,2}烟|冒火|着了))",
    r"(煤气|燃气|天然气|液化气|毒气|化学品|罐子).{0,12}(漏|泄|味|烟|辣)",
    r"(拿着?(刀|菜刀|棍子|斧头|砍刀|锤子|榔头|铁棍|钢管|砖头)|持刀|砍人|砍死|捅人|抢劫|抢了.{0,8}(包|钱|手机)|撬车|撬门|撬锁"
    r"|打架|在打(我|人|孩子|老婆|妻子|媳妇|老人|女的|她|他)|追人|绑架|砸门|(?<!没)砸.{0,4}(玻璃|车窗)|一直跟着我"
    r"|跟踪我|尾随|(硬|强行|被).{0,2}(拉|拖|拽|塞)(上|进).{0,8}车|(有人|陌生人).{0,6}(在翻东西|翻我家|撬)|入室)",
    r"(昏迷|晕倒|倒地|倒在.{0,6}(地上|地板)|心脏病(犯|发)|叫不醒|没有?呼吸|不省人事|大出血|流了?(好多|很多)?血|喘不上气|抽搐"
    r"|羊水破|要生了|说不出话|口齿不清|说话.{0,3}不(太)?清|半边脸|嘴歪|半边身子|吞下去|吞了|误吞|误食|卡在喉咙"
    r"|(好多|很多|一地|一滩|满地|全是|一身)(的)?血(?!腥)|血.{0,4}(止不住|往外(涌|喷|冒))|止不住血|(喊|叫)(他|她)?.{0,2}没(有)?反应"
    r"|嘴唇发紫|(烧炭|炭盆|炭火|煤炉|一氧化碳).{0,20}(头晕|想吐|恶心|不清|叫不醒|昏)"
    r"|(摔|掉|跌)(下来|下去|倒)了?.{0,12}(起不来|不动了|不说话|没反应|昏|流血|动不了))",
    r"(溺水|落水|掉(进|到)?(河|江|水)里|掉下去了|在水里漂|扑腾|都在水里)",
    r"(被困|困在|锁在车里|锁着(一)?个?(小孩|孩子)|关在电梯|(被锁|锁在|被关|关在).{0,12}(出不去|出不来|打不开)|下不去|下不来"
    r"|逃不出|里(面|头)?的?(人|孩子|老人|小孩).{0,4}(出不来|出不去)"
    r"|(手|脚|腿|胳膊|手臂|头|人).{0,6}(卷进|绞进|卷入|夹住|压住|卡住|卡在)"
    r"|(爬到|爬上|站在|坐在).{0,8}(阳台外|窗外|空调外机|窗台外)"
    r"|(淹到|没过|漫过).{0,4}(车窗|车顶|脖子|胸口)|(孩子|儿子|女儿|小孩).{0,12}(不见了|走丢了|被人抱走))",
    r"电梯.{0,12}(卡|停|困)住?.{0,30}(在里面|在里头|里面有.{0,3}人|出不来|没人应|没人管)",
    r"(掉进|掉到|掉入|落入|跌进|跌入|摔进).{0,6}(池|井|坑|塘|河|江|湖|海)",
    r"(撞了|撞到|撞倒|被.{0,3}撞|车祸|翻车|侧翻|翻在).{0,15}(躺|受伤|流血|不动|倒地|出不来)",
    r"((塌了|坍塌).{0,8}(压|人)|脚手架塌|压着人|电线断|触电|惨叫)",
]
# What the caller says rules the danger out: the fire is out, the ambulance has been, no gas smell.
NOT_DANGER = (r"(已经扑灭|已经灭了|火.{0,3}(灭|扑灭|熄灭)了|已经处理好|已经送医|已经送(到|去)?医院|(已经|后来)?找到了"
              r"|(120|救护车).{0,4}(拉走|接走|送走|来过|走了)|没(有)?闻到|没有?(异|气)?味|没(有)?漏|不漏)")
EMERGENCY_NUMBERS = "如果现在有人身或财产危险，请立即拨打 110（报警）、119（火警）或 120（急救）"
POSSIBLE_EMERGENCY_ADVICE = f"{EMERGENCY_NUMBERS}；不紧急的话，我们继续为您登记。"
# Self-harm or violence only counts as an emergency when it is happening now; as a threat it is 扬言.
SELF_HARM = r"(跳下去(?![捞救])|跳楼|跳河|安眠药|农药|百草枯|敌敌畏|老鼠药|割腕|自焚|汽油|绑了东西|栏杆外|不想活)"
ON_THE_EDGE = r"(已经|现在|正|此刻|我)(就)?(在|站在|坐在|爬上了|爬到了)(了)?.{0,4}(楼顶|天台|桥上|桥栏|塔吊|栏杆外)"
THREAT_PATTERNS = [
    r"(扬言|跳下去(?![捞救])|跳楼|跳河|自杀|自焚|轻生|不想活|活不下去|同归于尽|鱼死网破|拼了|拼命|砍死|弄死|毒死|收拾了"
    r"|(我|老子|别怪我).{0,4}动手|(我|老子)(要|就|会|一定)?报复|报复(他|她|社会|他们)|(浇|泼|带着?|拎着?|买了?|有).{0,3}汽油"
    r"|汽油.{0,4}(浇|泼|点|准备)"
    r"|点了|绑了东西|(去|站在|爬到|爬上).{0,8}(楼顶|塔吊|天台)|我.{0,3}在.{0,2}(楼顶|天台)|不怕坐牢|坐到死|死给.{0,3}看"
    r"|(喝|吃)(农药|安眠药)|喝药|割腕|上吊|遗书|遗言|后事|一了百了|了断|活着没意思|烂命一条|干出什么事|出了事我负责|后果自负"
    r"|算账|我.{0,6}拿(着|上)?(刀|菜刀|锤子|榔头|棍子|铁棍|斧头|砖头)|(我|要|就).{0,4}(把|给).{0,8}(砸了|砸烂|烧了|掀了|点了)"
    r"|(去|要|就|会|我).{0,3}杀了|(结束|了结)(这一切|自己|生命)|早点解脱|一死了之|做出什么(事|来)"
    r"|会发生什么.{0,6}(管不了|不知道|保证不了)|不会让(他|她|你们|他们).{0,2}好过|没什么(可|好)?(失去|怕)的"
    r"|(住哪|住在哪|家在哪|在哪.{0,4}上学).{0,8}我.{0,2}(也)?知道"
    # the means got ready, a life staked, a face remembered, nothing promised
    r"|(农药|安眠药|老鼠药|百草枯|敌敌畏|绳子|木炭).{0,4}(买好|准备好|备好|买来了)"
    r"|(买好|准备好|备好)了?.{0,4}(农药|安眠药|老鼠药|百草枯|敌敌畏|绳子|木炭)"
    r"|命(都|也)?不要了|豁出(这条命|去了)|(这条|一条)命.{0,4}(不要|搭上|拼)"
    r"|别让我.{0,6}(碰|遇|撞|看)(到|见)|(警号|车牌|名字|长相|工号).{0,3}我.{0,2}记住了|我.{0,2}记住(你|他|她)了"
    r"|不(敢)?保证(自己)?.{0,4}(做出|干出|会做|会干))",
    r"((集体|一起|组团|我就去|就去|要去|再去|天天去).{0,6}上访|进京|去北京|讨说法|一起(去|到).{0,8}(政府|门口)|堵路"
    r"|(就|要|去|我们).{0,3}(把|给).{0,6}(路|马路|大门|门口)(给)?堵|拉横幅|静坐|门口坐着|门口(睡|躺|打地铺)|闹大|别怪我"
    r"|(就|赖着?|坐着|躺着)不走|不解决.{0,4}不走|(政府|区委|街道|信访办)(门口|大门口?|楼下).{0,4}(集合|聚集|集会)"
    r"|(集体|统一|一起).{0,10}(去|到).{0,10}(政府|区委|市委)|跪着|下跪|跪到|集体停工|罢工|抗议"
    r"|(路上|马路上|路中间).{0,2}(一坐|坐着|躺着|一躺)|(天天|每天|一直|还要)去.{0,6}闹|闹到底)",
]


def _shortly_before(pattern: str, text: str, spans: list[tuple[int, int]], reach: int = 12) -> bool:
    """A match of `pattern` ending at most `reach` characters before one of the spans starts."""
    return any(m.end() <= start <= m.end() + reach for m in re.finditer(pattern, text) for start, _ in spans)


_SENTENCE_END = r"[。！？!?；;\n]+"


def normalize_sentences(text: str) -> str:
    """Normalised like every other intake text, but with each sentence end kept as "。" (normalising turns all
    punctuation into spaces), so that `is_emergency` can judge tense sentence by sentence."""
    from kb.text import normalize

    return "。".join(n for n in (normalize(s) for s in re.split(_SENTENCE_END, text)) if n)


def is_emergency(text: str) -> bool:
    """Danger happening now, in a text from `normalize_sentences`. A past or hypothetical incident is not an
    emergency, unless a word saying it is going on now comes just before the danger ("上周着火了……现在又有人充电"
    is not a fire now)."""
    now = re.search(_NOW, text) is not None
    if re.search(ON_THE_EDGE, text):
        return True
    if re.search(SELF_HARM, text) and (now or re.search(r"(手里拿着|身上|吃了|喝了|吞了|打不通)", text)):
        return True
    if now and re.search(r"(堵了|正在堵|已经.{0,8}堵|拉起了?横幅|正在静坐)", text):  # a mass incident under way
        return True
    if re.search(NOT_DANGER, text):
        return False
    # Sentence by sentence: "去年失业了。刚才楼下冒黑烟" is a fire now. A past set by one sentence carries on into
    # the next until a sentence says "now" again ("上周五着火了。浓烟……" is still last week's fire).
    past_context = False
    for sentence in re.split(_SENTENCE_END, text):
        has_past, has_now = re.search(_PAST, sentence) is not None, re.search(_NOW, sentence) is not None
        spans = [m.span() for p in EMERGENCY_PATTERNS for m in re.finditer(p, sentence)]
        if spans:
            if has_past and _shortly_before(_NOW, sentence, spans):
                return True
            if not has_past and (has_now or not past_context):
                return True
        past_context = has_past or (past_context and not has_now)
    return False


# Exclusions stated in so many words; anything subtler is left to the model.
EXCLUSION_PATTERNS = {
    "litigation": r"(起诉|诉讼|开庭|打官司|官司|仲裁委|申请了?(劳动)?仲裁|行政复议|复议期间|法院(已经?)?判|判决"
                  r"|二审|一审|上诉|法院执行|强制执行)",
    "military": r"(部队|军队|军营|营区|军区|现役|服役|武警|军事管理区|军医院|随军|军用)",
    "secret": r"(涉密|保密项目|国家秘密|机密|导弹|国防项目"
              r"|(查|告诉我|知道).{0,12}(住在哪|住哪|家住|电话号码|开房记录|户籍信息)"
              r"|(电话|号码|名字|姓名|住址|记录).{0,4}(告诉|给)我|想知道是(谁|哪))",
    "designated_channel": r"(收红包|受贿|贪污|腐败|好处费|保护费|公车私用|以权谋私|进了自己的腰包|纪委|监委|12388"
                          r"|人大代表选举|选民名单|给钱就能进|收钱办事"
                          # railways and airlines have channels of their own
                          r"|(高铁|火车|列车)(上|里|票|晚点|延误)|列车员|12306|铁路局|航班|航空公司"
                          r"|开公车|党费|违纪|人代会|(代表|委员).{0,6}(议案|提案)|(放进|装进|揣进)了?自己的?(口袋|腰包))",
    # another province or city; not 长江西路, and not "去北京" (a petition threat about a local matter)
    "out_of_jurisdiction": r"(安徽|江苏|浙江|(?<!长)江西|河南|河北|山东|山西|湖南|湖北|四川|重庆|广东|广西|福建|云南"
                           r"|贵州|陕西|甘肃|黑龙江|吉林|辽宁|内蒙古|新疆|天津|(?<![去到上进])北京|杭州|苏州|南京|昆山"
                           r"|无锡|宁波|深圳|广州)",
}
LOCAL = (r"(宝山|松江|上海|本市|本区|街道|居委|镇|顾村|吴淞|大场|杨行|月浦|罗店|罗泾|高境|庙行|淞南|张庙|友谊路|方松"
         r"|中山|岳阳|永丰|泗泾|洞泾|九亭|新桥|车墩|叶榭|小昆山|石湖荡|泖港|佘山|新浜)")
# The word is there but the matter is not excluded: a question about the procedure, something asked after
# the case is over, a family's benefits, a street next to a barracks. The model weighs these.
EXCLUSION_GUARDS = {
    "litigation": r"(想问|问问|请问|怎么|要带|材料|在哪|区别|能不能|可不可以|还是|之前|准备|还没|不用你们管|没参加"
                  r"|就只能|陪审)",
    "military": r"(军属|家属|光荣牌|优待|优抚|转业|退役|复员|当兵|入伍|门口)",
    "out_of_jurisdiction": LOCAL,  # a local matter of someone from elsewhere
}


def rule_exclusion(text: str) -> str | None:
    for code, pattern in EXCLUSION_PATTERNS.items():
        if re.search(pattern, text) and not re.search(EXCLUSION_GUARDS.get(code, "(?!)"), text):
            return code
    return None


# Someone else's threat against the caller ("前夫天天发消息说要弄死我") or a stranger seen at risk ("有人在桥上要跳河"):
# the caller is the one in danger or a witness, not the one threatening. The danger itself is the emergency rules'
# and the safety model's to see. A relative's "不想活了" stays a threat: the family is asking for help in time.
THIRD_PARTY = (r"(?<![跟和同把给对让找向替与叫帮被])(有人|他|她|他们|她们|前夫|前妻|老公|丈夫|老婆|妻子|对方|男的|女的"
               r"|房东|老板|邻居|同事|室友|那人|那个人|讨债的|催债的|要债的|催收|债主)")
CALLER = r"(?<![给跟对和向找让叫把被帮替问诉])(我|老子|咱|俺)(?!的?(爸|妈|女儿|儿子|孩子|老公|老婆|邻居|家|们这))"


def _threat_matches(text: str) -> Iterator[tuple[re.Match[str], bool]]:
    """Every threat-wording match, with whether someone other than the caller says or does it."""
    for p in THREAT_PATTERNS:
        for m in re.finditer(p, text):
            clause = text[text.rfind(" ", 0, m.start()) + 1 : m.start()]  # normalised text: clauses end at a space
            others = list(re.finditer(THIRD_PARTY, clause))
            someone_else = bool(others) and not re.search(CALLER, clause[others[-1].end():]) and (
                _aimed_at_caller(text, m) or others[-1].group() == "有人")
            if m.group() == "扬言":  # reports others' threats ("还扬言要去我单位闹") unless the caller says it
                someone_else = not re.search(CALLER, clause)
            yield m, someone_else


def _aimed_at_caller(text: str, m: re.Match[str]) -> bool:
    return text[m.end() : m.end() + 1] == "我"


def threatened_by_someone_else(text: str) -> bool:
    """Someone else's threat aimed at the caller: the caller gets the police number first, like any danger."""
    return any(other and _aimed_at_caller(text, m) for m, other in _threat_matches(text))


def is_threat(text: str) -> bool:
    """Threat wording the caller uses of themself, in normalised text."""
    return any(not other for _, other in _threat_matches(text))


@dataclass
class Unit:
    name: str
    district: str
    level: str
    duties: str
    keywords: list[str]
    streets: list[str] = field(default_factory=list)


@lru_cache(maxsize=1)
def load_units(path: Path = DATA / "units.json") -> tuple[Unit, ...]:
    rows = json.loads(path.read_text(encoding="utf-8"))
    return tuple(Unit(r["name"], r["district"], r["level"], r["duties"], list(r["keywords"]),
                      list(r.get("streets", []))) for r in rows)


def route(text: str, units: tuple[Unit, ...], model_scores: dict[str, float] | None = None, k: int = 3
          ) -> list[dict[str, Any]]:
    """Units ranked by duty keywords (谁主管谁负责), place (属地管理) and the routing model, with the reason."""
    model_scores = model_scores or {}
    scored = []
    for u in units:
        hits = [w for w in u.keywords if w and w in text]
        places = [p for p in u.streets if p and p in text]
        score = 0.35 * min(1.0, sum(len(w) for w in hits) / 6) + 0.5 * model_scores.get(u.name, 0.0)
        why = []
        if hits:
            why.append(f"职责关键词：{'、'.join(hits[:4])}")
        if places:
            score += 0.25
            why.append(f"属地：{'、'.join(places[:3])}")
        if model_scores.get(u.name, 0) >= 0.2:
            why.append(f"相似工单多由该单位办理（{model_scores[u.name]:.0%}）")
        if score > 0:
            scored.append({"unit": u.name, "score": round(min(score, 1.0), 4), "why": "；".join(why) or u.duties[:40]})
    scored.sort(key=lambda x: x["score"], reverse=True)
    return scored[:k]


# -- the trained part -----------------------------------------------------------------------------------

TRAINING_FILE = DATA / "intake_messages.jsonl"


@dataclass(frozen=True)
class Labelled:
    text: str
    label: str  # a category, or an exclusion code
    urgency: str
    threat: bool
    unit: str | None


def load_labelled(path: Path = TRAINING_FILE) -> list[Labelled]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            d = json.loads(line)
            label = d["exclusion"] if not d["accepted"] else d["category"]
            out.append(Labelled(d["text"], label, d["urgency"], bool(d["threat"]), d.get("unit")))
    return out


def is_heldout(m: Labelled) -> bool:
    import hashlib

    return int(hashlib.md5(m.text.encode()).hexdigest(), 16) % 4 == 0  # a quarter held out for the bench


class IntakeClassifier:
    """Character n-gram logistic models: one for category/exclusion, one for the handling unit."""

    def __init__(self, examples: list[Labelled], units: tuple[Unit, ...]):
        from kb.text import normalize

        self.normalize = normalize
        self.units = units
        texts = [normalize(m.text) for m in examples]

        self.scope = _char_ngram_model(c=20).fit(texts, [m.label for m in examples])
        # Safety nets behind the rules: wording the rules have never seen. A flag adds the emergency numbers or
        # the 扬言 tag, it never turns a citizen away. Recall targets in cross-validation on the labelled set:
        # 97 % for emergencies (a sentence of advice to 1 in 6 ordinary messages is cheap), 85 % for threats
        # (97 % would tag 1 in 6 ordinary orders 扬言, and the rules already catch explicit wording).
        self.safety = {
            "emergency": _SafetyModel(texts, [m.label == "emergency" for m in examples], recall=0.97),
            "threat": _SafetyModel(texts, [m.threat for m in examples], recall=0.85),
        }
        routed = [(t, m.unit) for t, m in zip(texts, examples, strict=True) if m.unit]
        # The directory itself teaches the router too: every duty statement, keyword and place of a unit.
        for u in units:
            routed.append((normalize(u.duties), u.name))
            routed.extend((normalize(w), u.name) for w in (*u.keywords, *u.streets))
        self.router = _char_ngram_model(c=20).fit([t for t, _ in routed], [u for _, u in routed]) if routed else None

    def classify(self, text: str) -> dict[str, Any]:
        norm = self.normalize(text)
        threat_wording = is_threat(norm)
        threat = threat_wording or self.safety["threat"].flags(norm)
        if is_emergency(normalize_sentences(text)):
            return self._excluded("emergency", 1.0, threat, threat_wording, "描述的是正在发生的危险", category=None)
        probs = dict(zip(self.scope.classes_, self.scope.predict_proba([norm])[0], strict=True))
        label = rule_exclusion(norm) or max(probs, key=probs.__getitem__)
        if probs.get("emergency", 0.0) >= 0.5:  # the model may see an emergency the rules missed; never the reverse
            return self._excluded("emergency", probs["emergency"], threat, threat_wording, "内容与紧急求助相似",
                                  category=None)
        best_category = max(CATEGORIES, key=lambda c: probs.get(c, 0.0))
        possible_emergency = self.safety["emergency"].flags(norm) or threatened_by_someone_else(norm)
        if label in EXCLUSIONS and label != "emergency":
            out = self._excluded(label, probs.get(label, 1.0), threat, threat_wording, "", category=best_category)
            if possible_emergency:  # a danger somewhere else is still a danger: the numbers come first
                out.update(possible_emergency=True, urgency="urgent",
                           advice=f"{EMERGENCY_NUMBERS}。{out['advice']}")
            return out
        category = label if label in CATEGORIES else best_category
        unit_scores = {}
        if self.router is not None:
            unit_scores = dict(zip(self.router.classes_, self.router.predict_proba([norm])[0], strict=True))
        return {
            "accepted": True, "category": category, "exclusion": None,
            "reason": f"属于热线受理范围的{category}类诉求", "rule": RULES["accepted"],
            "advice": POSSIBLE_EMERGENCY_ADVICE if possible_emergency else "",
            "urgency": "urgent" if threat or possible_emergency else "normal", "threat": threat,
            "threat_wording": threat_wording, "possible_emergency": possible_emergency,
            "suggested_units": route(norm, self.units, unit_scores),
            "confidence": round(float(probs.get(category, 0.0)), 4),
        }

    def _excluded(self, code: str, confidence: float, threat: bool, threat_wording: bool, why: str,
                  category: str | None) -> dict[str, Any]:
        urgency = "emergency" if code == "emergency" else ("urgent" if threat else "normal")
        reason = {"emergency": "紧急情况不属于热线受理范围，须立即拨打紧急电话"}.get(code, "属于不予受理的情形")
        return {
            "accepted": False, "category": category, "exclusion": code,
            "reason": f"{reason}{('：' + why) if why else ''}", "rule": RULES[code], "advice": ADVICE[code],
            "urgency": urgency, "threat": threat, "threat_wording": threat_wording,
            "possible_emergency": code == "emergency", "suggested_units": [], "confidence": round(float(confidence), 4),
        }


def _char_ngram_model(c: float) -> Any:
    """Character 1–3-gram tf-idf into a class-balanced logistic regression: every intake model's shape."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    return make_pipeline(TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), sublinear_tf=True),
                         LogisticRegression(C=c, max_iter=3000, class_weight="balanced"))


class _SafetyModel:
    """A binary character n-gram model whose threshold is chosen by 5-fold cross-validation on the labelled set:
    the highest one that still finds `recall` of the positives there."""

    def __init__(self, texts: list[str], labels: list[bool], recall: float):
        import numpy as np
        from sklearn.model_selection import StratifiedKFold, cross_val_predict

        y = np.asarray(labels, dtype=bool)
        self.model = None
        self.threshold = 1.0
        if y.sum() < 10 or (~y).sum() < 10:
            return  # too few examples to learn from; the rules alone decide
        folds = StratifiedKFold(5, shuffle=True, random_state=0)
        held_out = cross_val_predict(_char_ngram_model(c=5), texts, y, cv=folds, method="predict_proba")[:, 1]
        self.threshold = float(np.sort(held_out[y])[int((1 - recall) * y.sum())])
        self.model = _char_ngram_model(c=5).fit(texts, y)

    def probability(self, norm: str) -> float:
        return float(self.model.predict_proba([norm])[0][1]) if self.model is not None else 0.0

    def flags(self, norm: str) -> bool:
        return self.model is not None and self.probability(norm) >= self.threshold


_build_lock = threading.Lock()


def default_classifier() -> IntakeClassifier:
    """Trained on the training part of the shipped labelled set (the held-out quarter is for the bench).

    Built once per process; the lock makes a request that arrives during the start-up warm-up wait for it
    instead of training a second copy."""
    with _build_lock:
        return _default_classifier()


def classifier_ready() -> bool:
    """Whether the default classifier is built (for /health: a complaint before that waits for the build)."""
    return _default_classifier.cache_info().currsize > 0


@lru_cache(maxsize=1)
def _default_classifier() -> IntakeClassifier:
    return IntakeClassifier([m for m in load_labelled() if not is_heldout(m)], load_units())
