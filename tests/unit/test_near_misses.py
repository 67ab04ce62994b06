"""The bank of questions known to have no answer: closeness, which seed rows concern a KB, and the query features."""

from __future__ import annotations

from kb.search import NearMissBank, _incidental
from kb.service import seed_near_misses
from kb.text import TextProcessor


def test_closeness_is_the_best_token_set_ratio_over_the_bank():
    p = TextProcessor({"公基金": "公积金"})
    bank = NearMissBank(["公积金贷款能不能买车位", "今天天气怎么样", "  ", "今天天气怎么样"], p)
    assert len(bank) == 2  # blanks and repeats dropped
    assert bank.closeness(p.canonical("公基金贷款能不能买车位")) == 1.0  # synonyms apply to the bank too
    assert bank.closeness(p.canonical("低保怎么申请")) < 0.5
    assert bank.closeness("") == 0.0
    assert NearMissBank().closeness(p.canonical("任何问题")) == 0.0


def test_seed_rows_concern_only_the_kb_they_were_written_for():
    rows = [("公积金贷款能买车位吗", "GJJ007"), ("低保金几号发", "MZ001"), ("今天天气怎么样", None)]
    assert seed_near_misses(rows, {"GJJ007", "MZ001"}) == [q for q, _ in rows]
    assert seed_near_misses(rows, {"GJJ007"}) == ["公积金贷款能买车位吗", "今天天气怎么样"]  # MZ001 retired
    assert seed_near_misses(rows, {"X001"}) == []  # another KB: none of it applies


def test_numbers_codes_and_filler_are_not_words_the_kb_must_cover():
    """An unknown word counts as the rarest word a candidate leaves uncovered: a year, an order number or 啊啊啊
    must not make a plain question look like one the KB cannot answer."""
    assert all(_incidental(w) for w in ("2026", "13812340001", "gd20261203", "2ca216", "啊啊啊", "哈哈哈哈"))
    assert not any(_incidental(w) for w in ("滴滴", "妈妈", "居住证", "app", "b2", "80"))
