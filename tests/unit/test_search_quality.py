"""Retrieval quality asserted on the labelled development set (held-out half), and the set's own hygiene.

Floors: the acceptance figures of the KB issue on the held-out half (since 2026-12-04, third session, the
unanswerable one too: 0.863 at 4.1 % refused, one question above the target; docs/search.md); on the other sets,
regression guards a few points under today's levels.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from rapidfuzz import fuzz, process

from kb.evaluation import (
    CALIBRATION_DIR,
    DEV_DIR,
    TEST_DIR,
    TUNE_EXTRA_DIR,
    UNANSWERABLE_DIR,
    demo_docs,
    demo_index,
    evaluate_hybrid,
    evaluate_leg,
    load_queries,
    split,
)
from kb.search import Fusion
from kb.text import DATA_DIR, load_synonyms_file, normalize


def flat(text: str) -> str:
    """Normalised text without spaces: what the hygiene tests compare with rapidfuzz's ratio."""
    return normalize(text).replace(" ", "")


def kb_questions() -> list[str]:
    return [flat(q) for d in demo_docs() for q in (d.question, *d.similar_questions)]


def flat_queries(*folders: Path) -> list[str]:
    return [flat(q.query) for folder in folders for q in load_queries(folder)]


def too_close(texts: list[str], others: list[str]) -> list[str]:
    """The texts within a rapidfuzz ratio of 70 of one of `others` (flattened) or of 75 of a KB question: the
    limits every set's hygiene test holds it to."""
    kb = kb_questions()
    return [t for t in texts if process.extractOne(flat(t), others, scorer=fuzz.ratio)[1] >= 70
            or process.extractOne(flat(t), kb, scorer=fuzz.ratio)[1] >= 75]


@pytest.fixture(scope="module")
def index(shared_data_dir: Path):
    return demo_index(shared_data_dir / "encoder")


@pytest.fixture(scope="module")
def halves():
    return split(load_queries())


@pytest.fixture(scope="module")
def heldout(index, halves):
    return evaluate_hybrid(index, Fusion.load(), halves[1])


def test_top1_and_top3_on_held_out_queries(heldout):
    assert heldout["answerable"] >= 150
    assert heldout["top1"] >= 0.90, heldout
    assert heldout["top3"] >= 0.97, heldout


def test_no_answer_rates_on_held_out_queries(heldout):
    assert heldout["unanswerable"] >= 25
    assert heldout["answerable_no_answer"] <= 0.05, heldout
    assert heldout["unanswerable_no_answer"] >= 0.85, heldout  # 0.863 (44 of 51) today: one question to spare


def test_answer_decisions_are_mostly_right(heldout):
    assert heldout["answer_decisions"] >= 50
    assert heldout["answer_precision"] >= 0.95, heldout


def test_the_same_floors_hold_on_the_test_set(index):
    """The test set was written by other hands after the fit (docs/search.md): retrieval holds there too; its
    unanswerable figure (set3, set4, set7 and set8 together: 0.75 at 3.1 % refused; set7's subtle near misses are
    the hardest) is guarded at its own level."""
    test = evaluate_hybrid(index, Fusion.load(), load_queries(TEST_DIR))
    assert test["top1"] >= 0.90 and test["top3"] >= 0.97, test
    assert test["answerable_no_answer"] <= 0.05 and test["unanswerable_no_answer"] >= 0.70, test


def test_short_questions_stay_apart_and_are_rarely_refused(index):
    """tests/data/short_queries: half of 649 short questions as typed on WeChat (2026-12-03, fourth session; the
    other half teaches the answerability model), only reported. Retrieval is weaker on so few words (top-1 0.80);
    what is guarded is that a short answerable question is seldom refused (4.1 % today, 8.7 % before the
    answerability model learnt from written sets) and a short foreign one often is (53 % today; both figures move a few points whenever the encoder is
    retrained, docs/search.md)."""
    from kb.evaluation import SHORT_DIR
    from kb.service import load_near_miss_file

    short = load_queries(SHORT_DIR)
    ids = {d.entry_id for d in demo_docs()}
    assert len(short) >= 290 and sum(1 for q in short if q.expected is None) >= 100
    assert all(q.expected in ids for q in short if q.expected)
    others = flat_queries(DEV_DIR, TUNE_EXTRA_DIR, CALIBRATION_DIR, TEST_DIR, UNANSWERABLE_DIR)
    others += [flat(q) for q, _ in load_near_miss_file()]
    assert too_close([q.query for q in short], others) == []
    figures = evaluate_hybrid(index, Fusion.load(), short)
    assert figures["answerable_no_answer"] <= 0.05 and figures["unanswerable_no_answer"] >= 0.48, figures


def test_near_misses_unlike_any_before_stay_apart_and_are_measured(index):
    """tests/data/novel_queries (2026-12-04): near misses written to differ from every near miss already written for
    their entries, and answerable questions written to look like near misses. The engine's weakest ground: today a
    third are refused (at 9.6 % of its answerable ones: its guard is 10 %) and nearly half of its outright answers
    there are wrong (docs/search.md). Only reported; guarded at
    today's level so that it is noticed when a change makes it worse."""
    from kb.evaluation import NOVEL_DIR, SHORT_DIR
    from kb.service import load_near_miss_file, load_vote_file

    novel = load_queries(NOVEL_DIR)
    ids = {d.entry_id for d in demo_docs()}
    assert len(novel) >= 400 and sum(1 for q in novel if q.expected is None) >= 250
    assert all(q.expected in ids for q in novel if q.expected)
    others = flat_queries(DEV_DIR, TUNE_EXTRA_DIR, CALIBRATION_DIR, TEST_DIR, UNANSWERABLE_DIR, SHORT_DIR)
    others += [flat(q) for q, _ in load_near_miss_file()]
    assert too_close([q.query for q in novel], others) == []
    assert not {q.query for q in novel} & {str(r["query"]) for r in load_vote_file()}
    figures = evaluate_hybrid(index, Fusion.load(), novel)
    assert figures["answerable_no_answer"] <= 0.10 and figures["unanswerable_no_answer"] >= 0.25, figures


@pytest.mark.parametrize("query", ["潜水艇驾照怎么考", "火星上能种土豆吗", "护照过期了去哪里换新的",
                                   "公积金贷款能买车位吗（2ca216）"])
def test_questions_the_kb_cannot_answer_are_never_answered_outright(index, query):
    """At worst the citizen sees candidates with 都不是 (which records a 查无 item); never a confident wrong answer.
    潜水艇驾照怎么考 sits near the line: 驾照怎么考 is the KB's own matter."""
    assert index.search(query, Fusion.load()).decision != "answer"


@pytest.mark.parametrize("query", [
    "居住证怎么办理", "低保怎么申请", "结婚登记要带什么", "居住证怎么办理（2ca216）", "我在宝山区，居住证怎么办理",
    "居住证怎么办理 谢谢", "2026年居住证怎么办理", "居住证怎么办理啊啊啊", "低保怎么申请（77ab01）",
    "社保卡丢了",
])
def test_plain_questions_the_kb_answers_are_not_refused(index, query):
    """Plain questions, with a place, a year, thanks, filler or a stray code added, are not refused."""
    assert index.search(query, Fusion.load()).decision != "no_answer"


@pytest.mark.parametrize("leg", ["bm25", "rapidfuzz", "dense"])
def test_hybrid_beats_every_single_leg(index, halves, heldout, leg):
    alone = evaluate_leg(index, leg, *halves)
    assert heldout["top1"] > alone["top1"], (leg, alone)


# -- the data itself --------------------------------------------------------------------------------------

def test_demo_kb_size_and_shape():
    docs = demo_docs()
    assert len(docs) >= 200
    assert len({d.entry_id for d in docs}) == len(docs)
    categories = Counter(d.category for d in docs)
    assert len(categories) >= 12 and "热线办理" in categories
    assert all(len(d.similar_questions) >= 3 and d.policy_basis.strip() for d in docs)
    assert len(load_synonyms_file(DATA_DIR / "synonyms.tsv")) >= 80


def test_synonym_table_has_no_chains():
    syn = load_synonyms_file(DATA_DIR / "synonyms.tsv")
    assert [t for t, c in syn.items() if c in syn] == []


def test_dev_set_shape():
    queries = load_queries()
    ids = {d.entry_id for d in demo_docs()}
    assert len(queries) >= 300
    assert sum(1 for q in queries if q.expected is None) >= 50
    assert all(q.expected in ids for q in queries if q.expected)
    assert len({q.query for q in queries}) == len(queries)
    tune, held = split(queries)
    assert not {q.query for q in tune} & {q.query for q in held}


def test_dev_queries_do_not_copy_kb_questions():
    """A query close to a stored question would measure recall of the KB, not search."""
    kb = kb_questions()
    close = []
    for q in load_queries():
        _, score, _ = process.extractOne(flat(q.query), kb, scorer=fuzz.ratio)
        if score >= 75:
            close.append((q.query, score))
    assert close == []


@pytest.mark.parametrize(("folder", "size", "unanswerable"), [(TUNE_EXTRA_DIR, 400, 250), (CALIBRATION_DIR, 900, 450)])
def test_tuning_and_calibration_queries_stay_apart_from_the_development_set(folder, size, unanswerable):
    """tests/data/tune_queries and tests/data/calibration_queries teach the answerability model; a query close to
    a development query would leak held-out material into the fit, one close to a KB question would teach recall,
    not search."""
    extra = load_queries(folder)
    ids = {d.entry_id for d in demo_docs()}
    assert len(extra) >= size and sum(1 for q in extra if q.expected is None) >= unanswerable
    assert all(q.expected in ids for q in extra if q.expected)
    assert too_close([q.query for q in extra], flat_queries(DEV_DIR)) == []


def test_tuning_and_calibration_sets_do_not_overlap():
    tuning = {flat(q.query) for q in load_queries(TUNE_EXTRA_DIR)}
    assert not tuning & {flat(q.query) for q in load_queries(CALIBRATION_DIR)}


def test_the_test_set_stays_apart_from_everything_the_engine_learns_from():
    """tests/data/test_queries is only reported: a query close to a development, tuning, calibration or near-miss
    seed question (or to a KB question) would measure memory, not search."""
    from kb.service import load_near_miss_file

    test = load_queries(TEST_DIR)
    ids = {d.entry_id for d in demo_docs()}
    assert len(test) >= 500 and sum(1 for q in test if q.expected is None) >= 100
    assert all(q.expected in ids for q in test if q.expected)
    rounds = [[flat(q.query) for q in load_queries(f)] for f in sorted(TEST_DIR.glob("*.jsonl"))]
    assert len(rounds) >= 2
    for i, newer in enumerate(rounds[1:], 1):  # a later writing round repeats no earlier one
        earlier = [q for r in rounds[:i] for q in r]
        assert [q for q in newer if process.extractOne(q, earlier, scorer=fuzz.ratio)[1] >= 70] == []

    others = flat_queries(DEV_DIR, TUNE_EXTRA_DIR, CALIBRATION_DIR)
    others += [flat(q) for q, _ in load_near_miss_file()]
    assert too_close([q.query for q in test], others) == []


def test_the_unanswerable_set_stays_apart_and_is_still_mostly_not_answered_outright(index):
    """tests/data/unanswerable_queries: near misses of every entry by writers who saw only the KB, audited blind.
    Apart from every other set and the seed, so the bank cannot recognise them word for word. Today 54 % get
    no_answer and 11.9 % are answered outright with a wrong entry (8.2 % before the encoder learnt the labelled
    questions: the price of more right outright answers elsewhere, docs/search.md); the guard stays at 12 %."""
    from kb.service import load_near_miss_file

    pool = load_queries(UNANSWERABLE_DIR)
    ids = {d.entry_id for d in demo_docs()}
    rows = [json.loads(line) for f in sorted(UNANSWERABLE_DIR.glob("*.jsonl")) for line in f.open(encoding="utf-8")]
    assert len(pool) >= 700 and all(q.expected is None for q in pool)
    assert all(r["near"] is None or r["near"] in ids for r in rows) and all(r["why"] for r in rows)
    others = flat_queries(DEV_DIR, TUNE_EXTRA_DIR, CALIBRATION_DIR, TEST_DIR)
    others += [flat(q) for q, _ in load_near_miss_file()]
    assert too_close([q.query for q in pool], others) == []
    figures = evaluate_hybrid(index, Fusion.load(), pool)
    assert figures["unanswerable_no_answer"] >= 0.48, figures
    assert figures["answer_decisions"] <= 0.12 * len(pool), figures


def test_near_miss_seed_stays_apart_from_the_development_set():
    """kb/data/near_misses.jsonl (questions the demo KB cannot answer: 902 written from the KB by writers who saw
    no development query, plus 248 unanswerable tuning-only queries) feeds the answerability model's near-miss
    features at search time. A seed close to a development query would hand the engine held-out answers; one close
    to a KB question might be answerable after all."""
    from kb.service import load_near_miss_file

    seed = load_near_miss_file()
    ids = {d.entry_id for d in demo_docs()}
    assert len(seed) >= 1000 and all(near in ids for _, near in seed if near)
    assert too_close([q for q, _ in seed], flat_queries(DEV_DIR)) == []


def test_the_near_miss_seed_catches_more_and_refuses_no_more(index, halves):
    """The seed's effect on the held-out half, measured against an empty bank with the same fitted model."""
    from kb.search import NearMissBank

    fusion = Fusion.load()
    with_seed = evaluate_hybrid(index, fusion, halves[1])
    bank, index.near_misses = index.near_misses, NearMissBank()
    try:
        without = evaluate_hybrid(index, fusion, halves[1])
    finally:
        index.near_misses = bank
    assert with_seed["unanswerable_no_answer"] > without["unanswerable_no_answer"], (with_seed, without)
    assert with_seed["answerable_no_answer"] <= 0.05, with_seed


def test_a_question_known_to_have_no_answer_is_not_answered_again(index):
    """A citizen who said 都不是 (or got no_answer) opened a 查无 item; asking the same again, in the same or more
    words, is refused rather than answered with the entry that fooled the engine. A short item does not shadow
    every question that mentions it, and an entry's own question is still answered."""
    from kb.search import NearMissBank

    fusion = Fusion.load()
    # Offered the entry on suggestions for bus routes, which lists no lines. A better engine may refuse it by itself
    # (机场大巴末班车几点发车 served here until 2026-12-04); the test then needs another near miss that fools it.
    fooled = "夜班公交线路有哪些"
    assert index.search(fooled, fusion).decision != "no_answer"
    bank = index.near_misses
    own = index.search("最低生活保障怎么申请", fusion).hits[0]
    assert own.doc.entry_id == "MZ001"
    index.near_misses = NearMissBank([*bank.canon, fooled, "低保", own.doc.question], index.processor)
    try:
        assert index.search(fooled, fusion).decision == "no_answer"
        assert index.search("请问一下，夜班公交线路有哪些啊", fusion).decision == "no_answer"
        assert index.search("低保怎么申请", fusion).decision != "no_answer"  # 低保 alone says nothing
        canon = index.processor.canonical(own.doc.question)  # now an entry's own question
        assert not index.known_unanswerable(canon, own, index.near_misses.match(canon)[1])
    finally:
        index.near_misses = bank


def test_the_neighbour_vote_sets_foreign_questions_apart_from_plain_ones(index):
    """`knn`: the share of known near misses among a query's five nearest questions in the dense space. A plain
    question may have one (补社会保障卡要工本费不 beside 社保卡丢了, since the encoder learnt the labelled questions);
    a foreign one has most."""
    vote = {q: index.candidates(q)[0].features["knn"] for q in ("低保怎么申请", "社保卡丢了", "潜水艇驾照怎么考")}
    assert vote["低保怎么申请"] <= 0.2 and vote["社保卡丢了"] <= 0.2, vote
    assert vote["潜水艇驾照怎么考"] >= 0.6, vote


def test_the_seed_questions_are_refused_when_asked_as_written(index):
    """233 of the tuning-only set's 236 unanswerable questions are in the seed. As one feature of the answerability
    model the bank let 12 % of them through (and 30 % of the `answer` decisions on that set were wrong); known, they
    are refused. The set's answerable questions are not."""
    extra = evaluate_hybrid(index, Fusion.load(), load_queries(TUNE_EXTRA_DIR / "set1.jsonl"))
    assert extra["unanswerable_no_answer"] >= 0.97, extra
    assert extra["answerable_no_answer"] <= 0.03, extra


def test_dev_files_are_valid_jsonl():
    for f in sorted((Path(__file__).parents[1] / "data" / "dev_queries").glob("*.jsonl")):
        for line in f.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            assert set(row) == {"query", "expected"}, f


def test_large_kb_build_paths_give_the_same_answers(index, halves, monkeypatch):
    """Above PARALLEL_MIN_TEXTS the questions are segmented by worker processes one chunk ahead, and above
    FLAT_LIMIT the dense leg is an IVF index: forced here on the demo KB, the answers must not change (segmenting)
    or barely change (approximate dense candidates; the lexical legs still find the rest)."""
    import faiss

    import kb.search
    import kb.text
    from kb.search import SearchIndex

    monkeypatch.setattr(kb.text, "PARALLEL_MIN_TEXTS", 100)
    pooled = SearchIndex(index.docs, index.processor, index.encoder)
    monkeypatch.setattr(kb.search, "FLAT_LIMIT", 500)
    monkeypatch.setattr(kb.search, "BUILD_CHUNK", 1000)  # several chunks, so the look-ahead is exercised
    approx = SearchIndex(index.docs, index.processor, index.encoder)
    assert isinstance(approx.faiss, faiss.IndexIVF) and approx.faiss.ntotal == len(index.q_doc)
    assert pooled.q_canon == index.q_canon and pooled.vocab == index.vocab
    pooled.near_misses = approx.near_misses = index.near_misses

    fusion = Fusion.load()
    queries = [q.query for q in halves[1]]

    def top(ix):
        return [(o.decision, o.hits[0].doc.entry_id if o.hits else None) for o in (ix.search(q, fusion) for q in queries)]

    plain = top(index)
    assert top(pooled) == plain
    agree = sum(1 for a, b in zip(top(approx), plain, strict=True) if a == b) / len(plain)
    assert agree >= 0.95, agree


def test_answer_postings_are_sorted_within_every_entry_list():
    """The `ans` feature binary-searches each bigram's list of entries, so each list must be ascending; the
    check that decides whether to sort must see a list out of order even when its neighbours are fine."""
    import numpy as np

    from kb.search import SearchIndex

    class Model:  # the part of a bm25s model the postings come from
        def __init__(self, indptr, indices):
            self.scores = {"indptr": np.asarray(indptr), "indices": np.asarray(indices, dtype=np.int32),
                           "data": np.arange(len(indices), dtype=np.float32)}

    ordered = Model([0, 2, 2, 5], [3, 7, 0, 4, 9])  # an empty list in the middle, a drop at each list start
    indptr, indices = SearchIndex._sorted_postings(ordered)
    assert indices.tolist() == [3, 7, 0, 4, 9] and ordered.scores["data"].tolist() == [0, 1, 2, 3, 4]

    shuffled = Model([0, 2, 5], [3, 7, 4, 0, 9])  # the second list is out of order
    indptr, indices = SearchIndex._sorted_postings(shuffled)
    assert indices.tolist() == [3, 7, 0, 4, 9]
    assert shuffled.scores["data"].tolist() == [0, 1, 3, 2, 4]  # scores move with their entries
    assert SearchIndex._sorted_postings(None) is None


def test_coverage_matches_the_set_definition(index):
    """The vectorised coverage equals the idf shares computed token set by token set."""
    import numpy as np

    for query in ("低保怎么申请", "公积金贷款能买车位吗", "我家楼下早点铺天天把桌子摆到人行道上", "xyz 12345"):
        weights: dict[int, float] = {}
        for t in dict.fromkeys(index.processor.tokens(query)):
            tid = index.vocab.get(t, -1)
            weights[tid if tid >= 0 else -1 - len(weights)] = index._weight(tid)
        total = sum(weights.values())
        rows = np.arange(len(index.q_doc))
        cov, qcov = index._coverage(rows, weights, total)
        for qi in rows.tolist():
            row = set(index.q_tok[index.q_ptr[qi] : index.q_ptr[qi + 1]].tolist())
            shared = row & set(weights)
            assert cov[qi] == pytest.approx(sum(weights[k] for k in shared) / total)
            row_total = sum(float(index.idf[k]) for k in row)
            assert qcov[qi] == pytest.approx(sum(float(index.idf[k]) for k in shared) / row_total if row_total else 0)


def test_incidental_codes_and_repeats_are_taken_out_but_known_numbers_stay(index):
    """An order number or 啊啊啊 says nothing about what is asked; 12345 does (through the synonym table), and a
    query of nothing but a number is kept as typed."""
    assert "12345" in index.without_incidentals("我想问下12345都能管些啥事啊")
    assert "2ca216" not in index.without_incidentals("居住证怎么办理（2ca216）")
    assert "啊啊啊" not in index.without_incidentals("居住证怎么办理啊啊啊")
    assert index.without_incidentals("13812340001").strip() == "13812340001"
    assert index._known_parts("违章罚款") == ["违章", "罚款"]
