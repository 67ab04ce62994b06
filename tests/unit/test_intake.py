"""Scope classification: safety rules on every labelled message, model floors on the held-out quarter."""

import pytest

from api.domain.intake import (
    CATEGORIES,
    default_classifier,
    is_emergency,
    is_threat,
    load_labelled,
    load_units,
    normalize_sentences,
    threatened_by_someone_else,
)
from api.domain.intake_eval import evaluate
from kb.text import normalize


@pytest.fixture(scope="module")
def figures():
    return evaluate(default_classifier())


def test_every_labelled_emergency_is_caught_and_nothing_else_is():
    examples = load_labelled()
    assert sum(1 for m in examples if m.label == "emergency") >= 25
    missed = [m.text for m in examples if m.label == "emergency" and not is_emergency(normalize_sentences(m.text))]
    false = [m.text for m in examples if m.label != "emergency" and is_emergency(normalize_sentences(m.text))]
    assert missed == [] and false == []


def test_threat_wording_is_flagged_and_strong_feelings_are_not():
    examples = load_labelled()
    assert sum(1 for m in examples if m.threat) >= 50
    assert [m.text for m in examples if m.threat and not is_threat(normalize(m.text))] == []
    assert [m.text for m in examples if not m.threat and is_threat(normalize(m.text))] == []


@pytest.mark.parametrize("text,own", [
    ("前夫天天发消息说要弄死我，我很害怕，派出所说他没动手不好管", False),  # the caller is the one threatened
    ("昨晚我们这有人在桥上要跳河，后来被劝下来了，建议装监控", False),  # a witness
    ("他们再不解决，我就弄死他", True),
    ("他要是再拖着不还钱我就弄死他", True),  # the caller speaks of themself after the other
    ("我女儿之前说过不想活了，现在电话打不通", True),  # a relative at risk: the family asks for help in time
    ("真要没养老金我只能去找那个老板拼命了", True),
    # learnt from the fifth safety set's blind run: the means got ready, a life staked, a face remembered
    ("敌敌畏我已经买好了，你们看着办", True),
    ("这条命不要了我也要把工资要回来", True),
    ("那个城管的工号我记住了，别让我在街上碰到他", True),
    ("再来收一次摊，我不保证会干出什么", True),
    ("催收的天天打电话说要弄死我，这合法吗", False),  # the caller is the one threatened
    ("前夫给我发短信说要杀了我，能申请保护令吗", False),  # 给我 is not the caller speaking
    ("邻居老太太跟我说她儿子扬言要来砸我家", False),  # 扬言 reports someone else's words
])
def test_threat_wording_is_the_callers_own(text, own):
    assert is_threat(normalize(text)) is own


@pytest.mark.parametrize("text,now", [
    ("上周小区配电箱着火了，现在想问一下物业该不该赔", False),  # "现在想问" is the question, not the fire
    ("楼下天天敲管子，再这样我就拿菜刀下去", False),  # a conditional threat: 扬言, not a knife now
    ("楼下现在有人拿着菜刀追人", True),
    ("去年着火了。现在楼道里又全是烟", True),
])
def test_the_emergency_rule_reads_tense(text, now):
    assert is_emergency(normalize_sentences(text)) is now


def test_someone_elses_threat_gets_the_police_number_first():
    assert threatened_by_someone_else(normalize("催收的天天打电话说要弄死我，这合法吗"))
    assert not threatened_by_someone_else(normalize("再来收一次摊，我不保证会干出什么"))


def test_held_out_floors(figures):
    assert figures["heldout"] >= 120
    assert figures["accept_exclude_accuracy"] >= 0.95, figures
    assert figures["emergency_recall"] == 1.0, figures
    assert figures["routing_top3"] >= 0.85, figures
    assert figures["category_macro_f1"] >= 0.85, figures


@pytest.mark.parametrize("text,expect", [
    ("我闻到楼道里煤气味很重，现在还在漏", {"exclusion": "emergency", "urgency": "emergency"}),
    ("上周小区门口有人打架，派出所处理得不好，我要投诉", {"accepted": True}),
    ("法院门口那段路的路灯坏了好几天了", {"accepted": True}),
    # threatened by someone else: not the caller's 扬言, but the police number comes first
    ("前夫天天发消息说要弄死我，我很害怕，派出所说他没动手不好管", {"threat_wording": False, "possible_emergency": True}),
    ("我跟房东的押金纠纷已经在法院起诉了，下个月开庭", {"exclusion": "litigation"}),
    ("工伤认定拖了八个月，再不给认定我就去人社局楼顶跳下去", {"threat": True, "urgency": "urgent"}),
    ("政府都不作为，老百姓的事没人管", {"accepted": False}),
    # the trigger word alone does not exclude: a soldier's family, a past fire, figures of speech
    ("我老公是现役军人，军属的光荣牌怎么申请挂", {"accepted": True}),
    ("上礼拜楼道里电瓶车充电着火了，现在又有人在楼道里充电，你们管不管", {"accepted": True}),
    ("燃气灶打不着火，没闻到任何味道，一天没烧上饭了", {"accepted": True}),
    ("这个鬼天气再停水我要爆炸了", {"accepted": True, "threat_wording": False}),
    ("我怕被他们报复，举报的时候能替我保密吗", {"threat_wording": False}),
    # calm words for danger now
    ("我已经在楼顶了，欠薪的事你们到底管不管", {"exclusion": "emergency", "threat": True}),
    ("我老伴突然说不出话来，半边脸歪了", {"exclusion": "emergency"}),
    ("樓道裏全是煙，我們在五樓下不去", {"exclusion": "emergency"}),
    ("遗书我都写好了，工伤认定拖了一年了", {"threat": True, "urgency": "urgent"}),
])
def test_hard_cases(text, expect):
    result = default_classifier().classify(text)
    for k, v in expect.items():
        assert result[k] == v, (text, result)
    assert result["rule"] and (result["accepted"] or result["advice"])


def test_threat_wording_is_told_apart_from_a_suspicion_on_every_path():
    clf = default_classifier()
    for text in ("法院已经判决了，我对判决结果不服，要投诉这个判决", "楼上装修天天砸墙，吵得没法睡"):
        r = clf.classify(text)
        assert r["threat_wording"] is False, (text, r)
    r = clf.classify("法院已经判决了，再不给说法我就去区政府楼顶跳下去")
    assert r["threat_wording"] is True and r["threat"] is True


def test_emergency_advice_names_the_numbers():
    r = default_classifier().classify("隔壁楼着火了，浓烟很大")
    assert r["accepted"] is False and all(n in r["advice"] for n in ("110", "119", "120"))


def test_routing_gives_reasons_and_prefers_the_place():
    r = default_classifier().classify("友谊路街道牡丹江路上的小区里楼道堆满杂物，居委会不管")
    assert r["accepted"] and r["category"] in CATEGORIES
    assert r["suggested_units"][0]["why"]
    assert "友谊路街道办事处" in [u["unit"] for u in r["suggested_units"]]


def test_unit_directory():
    units = load_units()
    assert len(units) >= 25 and len({u.name for u in units}) == len(units)
    assert all(u.duties and u.keywords for u in units)


def test_blind_set_floors():
    """tests/data/intake_fresh.jsonl was written by someone who saw neither the labelled set nor the rules. Its first
    run found 3 missed emergencies (a lift stuck with people inside, a worker fallen into a tank, someone locked
    in a basement) and 2 missed threats; the rules were fixed, so these two figures are no longer blind."""
    from api.domain.intake_eval import evaluate_blind

    f = evaluate_blind()
    assert f["heldout"] >= 200 and f["emergencies"] >= 15
    assert f["emergency_recall"] == 1.0 and f["threat_recall"] >= 0.9, f
    assert f["accept_exclude_accuracy"] >= 0.95 and f["routing_top3"] >= 0.9 and f["category_macro_f1"] >= 0.85, f


def test_safety_blind_floors():
    """tests/data/intake_safety_blind.jsonl was written by someone who saw neither the rules nor any data. Its first
    run, with the rules alone: 21 of 45 emergencies and 23 of 43 threats. The safety models behind the rules were
    added without changing a rule for it, their thresholds chosen by cross-validation on the labelled set; the
    floors below are what they measured then (numbers shown for 42 of 45 emergencies, 41 of 43 threats flagged)."""
    from api.domain.intake_eval import evaluate_safety

    f = evaluate_safety()
    assert f["emergencies"] >= 40 and f["threats"] >= 40
    assert f["emergency_numbers_shown"] >= 0.9 and f["threat_recall"] >= 0.95, f
    assert f["non_emergency_excluded"] <= 0.05, f  # nobody with an ordinary matter is turned away as an emergency
    assert f["non_threat_flagged"] <= 0.1, f  # these are hard look-alikes; on ordinary messages it is 1–3 %


def test_second_safety_set_floors():
    """tests/data/intake_safety_blind2.jsonl (160 messages, written by someone who had seen no rule, data or the
    first set). Its blind first run: 28 of 50 emergencies turned away, 49 of 50 shown the numbers, 23 of 30 threats
    flagged. The rules were then extended from its misses (a past in another sentence no longer hides a danger
    now; trapped limbs, blood that will not stop, lost toddlers, veiled threats), so these floors only guard that
    work; tests/data/intake_safety_blind3.jsonl measures what it generalised to."""
    from api.domain.intake_eval import SAFETY_FILES, evaluate_safety

    f = evaluate_safety(SAFETY_FILES[1])
    assert f["emergencies"] == 50 and f["threats"] == 30
    assert f["emergency_excluded"] >= 0.95 and f["emergency_numbers_shown"] == 1.0 and f["threat_recall"] >= 0.95, f
    assert f["non_emergency_excluded"] <= 0.05 and f["non_threat_flagged"] <= 0.1, f


def test_third_safety_set_floors():
    """tests/data/intake_safety_blind3.jsonl (160 messages by a third writer who had seen no rule, data or earlier
    set), first run after the rules learnt from the second set: 29 of 50 emergencies turned away, 48 of 50 shown
    the numbers, 28 of 30 threats flagged, 4 of 110 ordinary messages turned away, 9 of 130 tagged 扬言.
    Fixes followed, about what nobody may miss rather than about this set's wording: an emergency that another
    exclusion (another city) turned away got no numbers; swallowed poison (百草枯) was not a danger; and the
    per-sentence tense rule never ran (normalising had turned the sentence ends into spaces)."""
    from api.domain.intake_eval import SAFETY_FILES, evaluate_safety

    f = evaluate_safety(SAFETY_FILES[2])
    assert f["emergencies"] == 50 and f["threats"] == 30
    assert f["emergency_numbers_shown"] == 1.0 and f["emergency_excluded"] >= 0.6 and f["threat_recall"] >= 0.9, f
    assert f["non_emergency_excluded"] <= 0.05 and f["non_threat_flagged"] <= 0.1, f


def test_fourth_safety_set_floors():
    """tests/data/intake_safety_blind4.jsonl (160 messages, 60 of them emergencies, 52 written calmly and 36 without
    any of 火烟血救死晕倒困抢打刀摔伤急) by a fourth writer. Nothing has been changed for it: these are its blind
    figures. Every emergency is shown the 110/119/120 numbers before anything else; the rules turn away 33 of 60."""
    from api.domain.intake_eval import SAFETY_FILES, evaluate_safety

    f = evaluate_safety(SAFETY_FILES[3])
    assert f["emergencies"] == 60 and f["threats"] == 25
    assert f["emergency_numbers_shown"] == 1.0 and f["emergency_excluded"] >= 0.5 and f["threat_recall"] >= 0.85, f
    assert f["non_emergency_excluded"] <= 0.05 and f["non_threat_flagged"] <= 0.1, f


def test_fifth_safety_set_floors():
    """tests/data/intake_safety_blind5.jsonl (160 messages: 60 emergencies, 44 of them written calmly and 36 without
    any of 火烟血救死晕倒困抢打刀摔伤急; 25 threats; 75 ordinary, 44 of them look-alikes) by a fifth writer who saw no
    rule, data or earlier set. Blind run (2026-12-02): 60 of 60 emergencies shown the numbers, 36 turned away;
    21 of 25 threats flagged (bought poison, 这条命不要了, a remembered 警号, 不保证会做出什么 missed); 2 of 100 ordinary
    messages turned away (last month's fire asked about "现在想问", a conditional 再这样我拿刀); 7 of 135 tagged 扬言
    (three of them someone else's threat against the caller). The wording and tense rules learnt those; over all
    2,158 labelled messages threat wording now keeps 167 of 230 threats (was 160) with 6 false flags (was 9), and
    the emergency rule's false alarms fell from 14 to 12 with no emergency lost."""
    from api.domain.intake_eval import SAFETY_FILES, evaluate_safety

    f = evaluate_safety(SAFETY_FILES[4])
    assert f["emergencies"] == 60 and f["threats"] == 25
    assert f["emergency_numbers_shown"] == 1.0 and f["emergency_excluded"] >= 0.55 and f["threat_recall"] >= 0.95, f
    assert f["non_emergency_excluded"] <= 0.02 and f["non_threat_flagged"] <= 0.05, f
