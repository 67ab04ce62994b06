"""Scope classification of a citizen message (受理范围 / 不予受理范围) and routing to a handling unit.

Safety first: emergencies and threat wording are caught by explicit rules before any model speaks, so a
model's mistake can never hide a fire. Then a character n-gram classifier (scikit-learn, trained on the
labelled intake set) names the category or the exclusion, and a router scores units by duty keywords,
place names (属地管理) and a second classifier.
"""

from __future__ import annotations

import json
import re
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

_NOW = r"(现在|正在|马上|快|赶紧|刚刚|刚才|还在|一直在|此刻|救命|快来)"
_PAST = r"(上周|上个月|去年|前几天|前天|昨天|之前|以前|当时|已经处理|早就)"
EMERGENCY_PATTERNS = [
    r"(着火|起火|失火|火灾|烧起来|冒浓烟|火很大)",
    r"(煤气|燃气|天然气).{0,6}(泄漏|漏气|味道?很重|漏了)",
    r"(持刀|拿刀|砍人|捅人|抢劫|绑架|正在打人|打起来了|有人在偷|入室盗窃)",
    r"(昏迷|晕倒|不省人事|大出血|流了很多血|喘不上气|心脏病发|中风了|抽搐)",
    r"(溺水|落水|掉进河|掉河里|掉进水里)",
    r"(被困|困在电梯|关在电梯)",
    r"(车祸|撞车|被车撞).{0,10}(受伤|流血|倒地|不动)",
    r"(要跳楼|站在楼顶|爬上楼顶|站在天台|要跳河|割腕|喝农药|吃了很多安眠药)",
]
THREAT_PATTERNS = [
    r"(扬言|跳楼|自杀|轻生|不想活|活不下去|同归于尽|报复社会|杀了他|砍了他|炸了|弄死|拼命)",
    r"(集体上访|进京|去北京上访|到市政府门口|拉横幅|堵路|围堵|静坐|联名闹|找媒体曝光闹大)",
]


def _any(patterns: list[str], text: str) -> bool:
    return any(re.search(p, text) for p in patterns)


def is_emergency(text: str) -> bool:
    """Danger happening now. A past incident is not an emergency unless the text also says it goes on."""
    if not _any(EMERGENCY_PATTERNS, text):
        return False
    if re.search(_PAST, text) and not re.search(_NOW, text):
        return False
    return True


def is_threat(text: str) -> bool:
    return _any(THREAT_PATTERNS, text)


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
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline

        from kb.text import normalize

        self.normalize = normalize
        self.units = units
        texts = [normalize(m.text) for m in examples]

        def model():  # type: ignore[no-untyped-def]
            return make_pipeline(TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), sublinear_tf=True, min_df=1),
                                 LogisticRegression(C=20, max_iter=3000, class_weight="balanced"))

        self.scope = model().fit(texts, [m.label for m in examples])
        routed = [(t, m.unit) for t, m in zip(texts, examples, strict=True) if m.unit]
        self.router = model().fit([t for t, _ in routed], [u for _, u in routed]) if routed else None

    def classify(self, text: str) -> dict[str, Any]:
        norm = self.normalize(text)
        threat = is_threat(norm)
        if is_emergency(norm):
            return self._excluded("emergency", 1.0, threat, "描述的是正在发生的危险", category=None)
        probs = dict(zip(self.scope.classes_, self.scope.predict_proba([norm])[0], strict=True))
        label = max(probs, key=probs.__getitem__)
        if probs.get("emergency", 0.0) >= 0.5:  # the model may see an emergency the rules missed; never the reverse
            return self._excluded("emergency", probs["emergency"], threat, "内容与紧急求助相似", category=None)
        best_category = max(CATEGORIES, key=lambda c: probs.get(c, 0.0))
        if label in EXCLUSIONS and label != "emergency":
            return self._excluded(label, probs[label], threat, "", category=best_category)
        category = label if label in CATEGORIES else best_category
        unit_scores = {}
        if self.router is not None:
            unit_scores = dict(zip(self.router.classes_, self.router.predict_proba([norm])[0], strict=True))
        return {
            "accepted": True, "category": category, "exclusion": None,
            "reason": f"属于热线受理范围的{category}类诉求", "rule": RULES["accepted"], "advice": "",
            "urgency": "urgent" if threat else "normal", "threat": threat,
            "suggested_units": route(norm, self.units, unit_scores),
            "confidence": round(float(probs.get(category, 0.0)), 4),
        }

    def _excluded(self, code: str, confidence: float, threat: bool, why: str, category: str | None
                  ) -> dict[str, Any]:
        urgency = "emergency" if code == "emergency" else ("urgent" if threat else "normal")
        reason = {"emergency": "紧急情况不属于热线受理范围，须立即拨打紧急电话"}.get(code, "属于不予受理的情形")
        return {
            "accepted": False, "category": category, "exclusion": code,
            "reason": f"{reason}{('：' + why) if why else ''}", "rule": RULES[code], "advice": ADVICE[code],
            "urgency": urgency, "threat": threat, "suggested_units": [], "confidence": round(float(confidence), 4),
        }


@lru_cache(maxsize=1)
def default_classifier() -> IntakeClassifier:
    """Trained on the training part of the shipped labelled set (the held-out quarter is for the bench)."""
    return IntakeClassifier([m for m in load_labelled() if not is_heldout(m)], load_units())
