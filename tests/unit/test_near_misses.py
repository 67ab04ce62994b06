"""The bank of questions known to have no answer: closeness, which seed rows concern a KB, and the query features."""

from __future__ import annotations

import numpy as np

from kb.encoder import training_fingerprint
from kb.search import Doc, NearMissBank, VoteExamples, _incidental
from kb.service import answered_by_entry, seed_near_misses, training_entries, vote_examples
from kb.text import TextProcessor


def test_closeness_is_the_best_share_of_a_bank_question_found_in_the_query():
    p = TextProcessor({"公基金": "公积金"})
    bank = NearMissBank(["公积金贷款能不能买车位", "今天天气怎么样", "  ", "今天天气怎么样"], p)
    assert len(bank) == 2  # blanks and repeats dropped
    assert bank.closeness(p.canonical("公基金贷款能不能买车位")) == 1.0  # synonyms apply to the bank too
    assert bank.closeness(p.canonical("我想问一下公积金贷款能不能买车位啊")) == 1.0  # the near miss, in more words
    assert bank.closeness(p.canonical("低保怎么申请")) < 0.5
    assert bank.closeness("") == 0.0
    assert NearMissBank().closeness(p.canonical("任何问题")) == 0.0


def test_a_plain_question_inside_a_longer_near_miss_is_not_close_to_it():
    """港澳台居民居住证怎么办理 is a near miss because of 港澳台居民; 居住证怎么办理 asks what the KB answers. (The
    token-set ratio used before scored both 100, and 社保卡丢了 was refused for 社保卡丢了被人冒用了怎么办.)"""
    p = TextProcessor()
    bank = NearMissBank(["港澳台居民居住证怎么办理", "社保卡丢了被人冒用了怎么办"], p)
    assert bank.closeness(p.canonical("居住证怎么办理")) < 0.6
    assert bank.closeness(p.canonical("社保卡丢了")) < 0.5


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


class CountingEncoder:
    """Unit vectors from a hash of the text, counting what it is asked to encode."""

    name, dim = "counting", 8

    def __init__(self) -> None:
        self.seen: list[str] = []

    def encode(self, texts):
        import numpy as np

        self.seen.extend(texts)
        rows = [np.random.default_rng(sum(map(ord, t))).standard_normal(self.dim) for t in texts]
        return np.asarray([r / np.linalg.norm(r) for r in rows], dtype=np.float32)


def test_a_bank_swap_encodes_only_the_questions_it_did_not_hold():
    """A 查无 item opening swaps the bank; with a transformer encoder, re-encoding thousands of open items on every
    swap would take a minute, so the vectors of questions the previous bank held are kept."""
    import numpy as np

    p, enc = TextProcessor(), CountingEncoder()
    first = NearMissBank(["公积金贷款能不能买车位", "今天天气怎么样"], p, enc)
    second = NearMissBank(["公积金贷款能不能买车位", "今天天气怎么样", "护照过期了去哪换"], p, enc, previous=first)
    assert enc.seen == [p.canonical("公积金贷款能不能买车位"), p.canonical("今天天气怎么样"),
                        p.canonical("护照过期了去哪换")]
    assert np.allclose(second.vectors[:2], first.vectors)
    other = CountingEncoder()  # a retrained encoder: nothing is reused
    NearMissBank(["今天天气怎么样"], p, other, previous=second)
    assert other.seen == [p.canonical("今天天气怎么样")]
    q = enc.encode([p.canonical("护照过期了去哪换")])[0]
    near = second.nearest(q, 2)
    assert len(near) == 2 and near[0] > 0.999 and near[0] >= near[1]
    assert len(NearMissBank(["今天天气怎么样"], p).nearest(q, 5)) == 0  # no encoder: no vote


def test_rejected_questions_feed_the_rule_but_not_the_evidence():
    """A 查无 item the office rejected is refused when asked again (the known-question share counts it) but takes no
    part in the soft evidence: neither the `nm` share nor the neighbour vote sees it."""
    p, enc = TextProcessor(), CountingEncoder()
    rejected = "小狗剃毛去哪家宠物店比较好"
    bank = NearMissBank(["公积金贷款能不能买车位"], p, enc, rule_only=[rejected, "公积金贷款能不能买车位"])
    assert len(bank) == 2 and bank.n_soft == 1
    assert enc.seen == [p.canonical("公积金贷款能不能买车位")]  # only evidence is encoded for the vote
    evidence, known = bank.match(p.canonical(rejected))
    assert known == 1.0 and evidence < 0.5
    evidence, known = bank.match(p.canonical("公积金贷款能不能买车位"))
    assert evidence == known == 1.0
    q = enc.encode([p.canonical(rejected)])[0]
    assert bank.nearest(q, 5).tolist() == bank.nearest(q, 1).tolist()  # the vote sees one row


def test_labelled_examples_vote_but_neither_feed_the_rule_nor_the_bigram_share():
    """The questions the answerability model learns from vote in `knn` beside the KB's own questions (answered) and
    the bank's (unanswered). They are not filed 查无 items: a question like one of them is not refused by the rule,
    and `nm` (near word-for-word repeats of a filed item) does not see them."""
    p, enc = TextProcessor(), CountingEncoder()
    examples = VoteExamples(unanswered=("护照过期了去哪换", "公积金贷款能不能买车位"), answered=("公积金怎么提取",))
    bank = NearMissBank(["公积金贷款能不能买车位"], p, enc, examples=examples)
    assert len(bank) == 1 and bank.vote_canon == [p.canonical("公积金贷款能不能买车位"), p.canonical("护照过期了去哪换")]
    assert bank.match(p.canonical("护照过期了去哪换")) == (0.0, 0.0)
    q = enc.encode([p.canonical("护照过期了去哪换")])[0]
    assert bank.nearest(q, 1)[0] > 0.999  # the unanswered example is the query's nearest near miss
    a = enc.encode([p.canonical("公积金怎么提取")])[0]
    assert bank.nearest_answered(a, 5).tolist() == bank.nearest_answered(a, 1).tolist()
    assert bank.nearest_answered(a, 1)[0] > 0.999
    # a swap for a 查无 item keeps the examples' vectors: nothing is encoded twice
    seen = len(enc.seen)
    swapped = NearMissBank(["公积金贷款能不能买车位", "低保金几号发"], p, enc, previous=bank, examples=bank.examples)
    assert enc.seen[seen:] == [p.canonical("低保金几号发")]
    assert len(swapped.vote_canon) == 3 and swapped.answered_vectors is not None


def test_vote_examples_concern_only_the_kb_they_were_written_for():
    rows = [{"query": "公积金怎么提取", "entry": "GJJ001"}, {"query": "低保怎么申请", "entry": "MZ001"},
            {"query": "公积金能买车位吗", "entry": None, "near": "GJJ007"}, {"query": "今天天气怎么样", "entry": None}]
    assert vote_examples(rows, {"GJJ001", "GJJ007", "MZ001"}) == VoteExamples(
        unanswered=("公积金能买车位吗", "今天天气怎么样"), answered=("公积金怎么提取", "低保怎么申请"))
    assert vote_examples(rows, {"GJJ001", "GJJ007"}).answered == ("公积金怎么提取",)  # MZ001 retired
    assert vote_examples(rows, {"X001"}) == VoteExamples()  # another KB: none of it applies


def test_the_domain_encoder_learns_the_labelled_questions_an_entry_answers():
    """They join the entry's similar questions for the encoder's training only (the KB is the office's); a question
    the KB cannot answer, or one for an entry not published, teaches nothing; a change to them retrains."""
    docs = [Doc("SJ012", 1, "缺斤少两怎么办", ("短斤缺两去哪投诉",), "向市场监管部门投诉。", "", "", ""),
            Doc("MZ001", 1, "如何申请低保", (), "向户籍地街道提出申请。", "", "", "")]
    rows = [{"query": "买肉少了二两找谁", "entry": "SJ012"}, {"query": "公积金能买车位吗", "entry": None, "near": "GJJ007"},
            {"query": "护照怎么办", "entry": "CR001"}]
    entries = training_entries(docs, answered_by_entry(rows))
    assert [e.similar_questions for e in entries] == [["短斤缺两去哪投诉", "买肉少了二两找谁"], []]
    assert docs[0].similar_questions == ("短斤缺两去哪投诉",)
    assert training_entries(docs) == training_entries(docs, {})
    assert training_fingerprint(entries, {}) != training_fingerprint(training_entries(docs), {})


def test_without_the_demo_kb_neither_the_seed_nor_the_vote_examples_apply(tmp_path):
    """Both are written for the demo KB: a deployment started with HOTLINE_LOAD_DEMO_KB=0 gets neither."""
    from api.bootstrap import search_service
    from api.settings import Settings

    bare = search_service(None, Settings(HOTLINE_DATA_DIR=tmp_path, HOTLINE_LOAD_DEMO_KB=False))  # type: ignore[arg-type]
    assert bare.near_miss_rows == [] and bare.vote_rows == []
    assert vote_examples(bare.vote_rows, {"MZ001"}) == VoteExamples()


def test_a_rebuild_with_the_same_encoder_does_not_encode_the_bank_again():
    """A publication rebuilds the index with the serving encoder while a new one trains: the seed and the vote's
    examples keep their vectors (about a quarter of a second on the demo KB), only the KB's questions are encoded."""
    from kb.search import Doc, SearchIndex

    p, enc = TextProcessor(), CountingEncoder()
    docs = [Doc("MZ001", 1, "如何申请最低生活保障", ("低保怎么申请",), "向户籍所在地街道申请。", "《社会救助暂行办法》",
                "区民政局", "民政")]
    examples = VoteExamples(unanswered=("护照过期了去哪换",), answered=("低保去哪办",))
    first = SearchIndex(docs, p, enc, near_misses=["公积金贷款能不能买车位"], vote_examples=examples)
    seen = len(enc.seen)
    again = SearchIndex(docs, p, enc, near_misses=["公积金贷款能不能买车位"], vote_examples=examples,
                        previous_bank=first.near_misses)
    bank_texts = {p.canonical(t) for t in ("公积金贷款能不能买车位", "护照过期了去哪换", "低保去哪办")}
    assert not bank_texts & set(enc.seen[seen:])
    assert np.allclose(again.near_misses.vectors, first.near_misses.vectors)
    assert np.allclose(again.near_misses.answered_vectors, first.near_misses.answered_vectors)
