"""Search quality on the labelled development set, and the fitting of fusion weights and thresholds.

The set is split by a hash of each query into a tuning half and a held-out half. The fit learns from the tuning
half and from the sets written for training (never from the held-out half or the sets kept for reporting), each
question scored out of fold; every figure we report comes from questions nothing learnt from, so it says how the
engine does on questions it has never seen.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kb.encoder import domain_encoder
from kb.search import (
    FEATURES,
    FUSION_FILE,
    QUERY_FEATURES,
    Doc,
    Fusion,
    NearMissBank,
    SearchIndex,
    is_short_question,
)
from kb.service import (
    VOTE_FILE,
    answered_by_entry,
    load_near_miss_file,
    load_vote_file,
    seed_near_misses,
    training_entries,
    vote_examples,
)
from kb.text import DATA_DIR, TextProcessor, load_synonyms_file

ROOT = Path(__file__).resolve().parent.parent
DEV_DIR = ROOT / "tests" / "data" / "dev_queries"
# Written from the KB by hands that saw no development query; the answerability model learns from them (not the
# candidate fusion): set1, 408 queries (236 the KB cannot answer, all but three also in the near-miss seed);
# set6, 326 short questions as typed on WeChat (2026-12-03, fourth session; 123 the KB cannot answer); set7, 185
# in the development set's style, half of them near misses asking what no answer says (the same session); set8, 182
# in that style by four more writers, audited blind by four others (2026-12-04; 83 the KB cannot answer).
TUNE_EXTRA_DIR = ROOT / "tests" / "data" / "tune_queries"
# 978 queries by four more writers who saw only the KB (2026-12-03): two answerable and two near misses per entry
# in one voice. Measured ways of fitting the no-answer line until the answerability model learnt from it
# (2026-12-03, fourth session; docs/search.md).
CALIBRATION_DIR = ROOT / "tests" / "data" / "calibration_queries"
# Queries in the development set's style, kept apart from every other set and only reported: set3, 271 by two
# writers (2026-12-03); set4, 253 by two more the same day, 20 % of them written to share words with a wrong entry;
# set7, 205 by three more (fourth session), the other half of the set7 written for training, by a hash; set8, 187,
# likewise the other half of set8 (2026-12-04).
TEST_DIR = ROOT / "tests" / "data" / "test_queries"
# 765 questions the KB cannot answer, near misses of every entry by four more writers (2026-12-03, second session),
# audited blind; nothing learns from them: how many a subtle near miss still gets past the engine.
UNANSWERABLE_DIR = ROOT / "tests" / "data" / "unanswerable_queries"
# The other half of set6 by a hash of each question (299, 105 the KB cannot answer), kept apart and only reported:
# short questions are what citizens type most, and the development set has few.
SHORT_DIR = ROOT / "tests" / "data" / "short_queries"
# 409 questions (252 the KB cannot answer) by four writers shown every near miss already written for their entries
# and told to find matters nobody had (what happens after, what if it goes wrong, a special circumstance), and
# answerable questions written to look like near misses (2026-12-04), audited blind. Only reported: learnt from, half
# of it made every set worse, itself included (docs/search.md). How the engine meets a near miss unlike any before.
NOVEL_DIR = ROOT / "tests" / "data" / "novel_queries"
DEMO_DIR = DATA_DIR / "demo"
ANSWER_KEEP = 0.9  # of the right outright answers, the share the answer bar must keep (on the tuning half)
CANDIDATE_FLOORS = (0.0, 0.0025, 0.005, 0.01, 0.02, 0.05)  # for the best candidate's probability (`fit_fusion`)
# The no-answer lines: the share of answerable training questions each may refuse. 5 % is the ceiling; the
# short questions keep a margin, because questions nobody trained on refuse more of them (docs/search.md).
LINE_SHARE = 0.05
SHORT_LINE_SHARE = 0.03


@dataclass(frozen=True)
class LabelledQuery:
    query: str
    expected: str | None
    near: str | None = None  # of an unanswerable question: the entry it is a near miss of, when written so


def load_queries(path: Path = DEV_DIR) -> list[LabelledQuery]:
    """Every labelled query of a folder of JSONL files, or of one file."""
    out = []
    for f in sorted(path.glob("*.jsonl")) if path.is_dir() else [path]:
        for line in f.read_text(encoding="utf-8").splitlines():
            if line.strip():
                d = json.loads(line)
                out.append(LabelledQuery(d["query"], d.get("expected"), d.get("near")))
    return out


def is_heldout(q: LabelledQuery) -> bool:
    return int(hashlib.md5(q.query.encode()).hexdigest(), 16) % 2 == 1


def split(queries: Sequence[LabelledQuery]) -> tuple[list[LabelledQuery], list[LabelledQuery]]:
    tune = [q for q in queries if not is_heldout(q)]
    held = [q for q in queries if is_heldout(q)]
    return tune, held


def demo_docs() -> list[Doc]:
    docs = []
    for f in sorted(DEMO_DIR.glob("*.jsonl")):
        for line in f.read_text(encoding="utf-8").splitlines():
            if line.strip():
                d = json.loads(line)
                docs.append(Doc(d["id"], 1, d["question"], tuple(d["similar_questions"]), d["answer"],
                                d["policy_basis"], d["unit"], d["category"]))
    return docs


def demo_index(encoder_dir: Path) -> SearchIndex:
    synonyms = load_synonyms_file(DATA_DIR / "synonyms.tsv")
    processor = TextProcessor(synonyms)
    docs = demo_docs()
    votes = load_vote_file()
    encoder = domain_encoder(training_entries(docs, answered_by_entry(votes)), synonyms, processor, encoder_dir)
    ids = {d.entry_id for d in docs}
    return SearchIndex(docs, processor, encoder, near_misses=seed_near_misses(load_near_miss_file(), ids),
                       vote_examples=vote_examples(votes, ids))


# -- metrics ----------------------------------------------------------------------------------------------

Ranker = Callable[[str], list[tuple[str, float]]]  # query → [(entry_id, score)] best first


def hybrid_ranker(index: SearchIndex, fusion: Fusion) -> Ranker:
    def rank(q: str) -> list[tuple[str, float]]:
        out = index.search(q, fusion, top_k=10)
        return [(h.doc.entry_id, h.score) for h in out.hits]

    return rank


def leg_ranker(index: SearchIndex, leg: str) -> Ranker:
    """One leg alone, scanning the whole KB, entries ranked by their best question."""

    def rank(q: str) -> list[tuple[str, float]]:
        if leg == "bm25":
            pairs = index.bm25_ranking(index.processor.tokens(q), 200)
        elif leg == "rapidfuzz":
            pairs = index.fuzzy_ranking(index.processor.canonical(q), 200)
        elif leg == "dense":
            pairs = index.dense_ranking(index.dense_query(q), 200)
        else:
            raise ValueError(leg)
        best: dict[str, float] = {}
        for qi, s in pairs:
            e = index.docs[index.q_doc[qi]].entry_id
            best[e] = max(best.get(e, float("-inf")), s)
        return sorted(best.items(), key=lambda t: t[1], reverse=True)

    return rank


def threshold_for(ranked: list[list[tuple[str, float]]], queries: Sequence[LabelledQuery],
                  max_answerable_refused: float = 0.03) -> float:
    """The highest no-answer threshold on the top score that refuses at most the given share of answerable
    queries: as many unanswerable ones as possible get no_answer at that cost."""
    tops = sorted(r[0][1] if r else float("-inf") for r, q in zip(ranked, queries, strict=True) if q.expected)
    k = int(max_answerable_refused * len(tops))
    return tops[k] if tops else 0.0


def metrics(ranked: list[list[tuple[str, float]]], queries: Sequence[LabelledQuery], no_answer: list[bool]
            ) -> dict[str, Any]:
    ans = [(r, q, na) for r, q, na in zip(ranked, queries, no_answer, strict=True) if q.expected]
    unans = [na for q, na in zip(queries, no_answer, strict=True) if not q.expected]
    top1 = sum(1 for r, q, _ in ans if r and r[0][0] == q.expected)
    top3 = sum(1 for r, q, _ in ans if q.expected in [e for e, _ in r[:3]])
    return {
        "answerable": len(ans),
        "unanswerable": len(unans),
        "top1": round(top1 / max(1, len(ans)), 4),
        "top3": round(top3 / max(1, len(ans)), 4),
        "unanswerable_no_answer": round(sum(unans) / max(1, len(unans)), 4),
        "answerable_no_answer": round(sum(na for _, _, na in ans) / max(1, len(ans)), 4),
    }


def evaluate_hybrid(index: SearchIndex, fusion: Fusion, queries: Sequence[LabelledQuery]) -> dict[str, Any]:
    ranked, refused, decisions = [], [], []
    for q in queries:
        out = index.search(q.query, fusion, top_k=10)
        ranked.append([(h.doc.entry_id, h.score) for h in out.hits])
        refused.append(out.decision == "no_answer")
        decisions.append(out.decision)
    m = metrics(ranked, queries, refused)
    answered = [(r, q) for r, q, d in zip(ranked, queries, decisions, strict=True) if d == "answer"]
    m["answer_decisions"] = len(answered)
    m["answer_precision"] = round(
        sum(1 for r, q in answered if q.expected and r[0][0] == q.expected) / max(1, len(answered)), 4)
    m["clarify_decisions"] = decisions.count("clarify")
    return m


def evaluate_leg(index: SearchIndex, leg: str, tune: Sequence[LabelledQuery], held: Sequence[LabelledQuery],
                 tune_indexes: Sequence[SearchIndex] | None = None) -> dict[str, Any]:
    """One leg's figures on the held-out half, its no-answer threshold drawn on the tuning half. `tune_indexes`:
    the index that ranks each tuning question, out of fold (`fold_indexes_of`): the domain encoder learns from the
    tuning half, and a threshold drawn where it has seen the questions sits too high for questions it has not."""
    rank = leg_ranker(index, leg)
    t = threshold_for([leg_ranker(i, leg)(q.query) for q, i in zip(tune, tune_indexes or [index] * len(tune),
                                                                 strict=True)], tune)
    ranked = [rank(q.query) for q in held]
    return metrics(ranked, held, [not r or r[0][1] < t for r in ranked]) | {"threshold": round(t, 4)}


# -- fitting ----------------------------------------------------------------------------------------------

def fit_fusion(index: SearchIndex, tune: Sequence[LabelledQuery], encoder_dir: Path) -> Fusion:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    # The labelled questions teach the domain encoder and vote in `knn`, so every training question is scored by a
    # fold's index that learnt from the other folds only, as a question is met before anyone has labelled it.
    training = stage2_training(tune)
    folds = _fold_indexes(index, training, encoder_dir)
    cands = [(q, i.candidates(q.query)) for q, i in zip(tune, _index_of_row(folds, len(tune)), strict=True)]
    x = np.asarray([[h.features[f] for f in FEATURES] for _, hits in cands for h in hits])
    y = np.asarray([1 if h.doc.entry_id == q.expected else 0 for q, hits in cands for h in hits])

    def tune_top1(w: np.ndarray, b: float) -> float:
        ok = 0
        for q, hits in cands:
            if q.expected and hits:
                best = max(hits, key=lambda h: b + sum(wi * h.features[f] for wi, f in zip(w, FEATURES, strict=True)))
                ok += best.doc.entry_id == q.expected
        return ok

    # Regularisation and class weighting chosen by top-1 on the tuning half (ties: the stronger regulariser).
    best_model, best_ok = None, -1
    for c in (0.1, 1.0, 10.0, 100.0):
        for cw in (None, "balanced"):
            m = LogisticRegression(C=c, max_iter=5000, class_weight=cw).fit(x, y)
            ok = tune_top1(m.coef_[0], float(m.intercept_[0]))
            if ok > best_ok:
                best_model, best_ok = m, ok
    assert best_model is not None
    fusion = Fusion({f: round(float(w), 4) for f, w in zip(FEATURES, best_model.coef_[0], strict=True)},
                    round(float(best_model.intercept_[0]), 4), 0.5, 0.0, 0.0,
                    source=f"candidates fitted on the tuning half (C={best_model.C}, "
                           f"class_weight={best_model.class_weight}); answerability on the tuning half, the "
                           "tuning-only and the calibration sets")

    # Stage 2, answerability, on query-level features of the best candidate (label: the KB has an answer). Trained
    # on every labelled question that is not held out or kept for testing: the tuning half, the tuning-only sets and
    # the calibration set (2,337 questions, 1,112 unanswerable). The tuning half alone (47 unanswerable) left a heavy
    # tail of near misses looking answerable (docs/search.md). The same questions vote in `knn` (VOTE_FILE) and teach
    # the encoder, so each is scored by its fold's index (`_fold_indexes`).
    rows = _out_of_fold_runs(folds, fusion, training, {q.query for q in load_queries(TUNE_EXTRA_DIR)})
    runs = rows[: len(tune)]
    qy = np.asarray([1 if q.expected else 0 for q, *_ in rows])
    facet = _fit_facet(fusion, [u for *_, u in rows], qy)
    for (_, _, f, _), v in zip(rows, facet, strict=True):
        f["facet"] = v
    qx = np.asarray([[f[k] for k in QUERY_FEATURES] for _, _, f, _ in rows])
    # Standardised so that one C regularises every feature alike (the scaling is folded back into the weights);
    # C chosen by out-of-fold ROC AUC.
    mu, sd = qx.mean(axis=0), qx.std(axis=0)
    sd[sd == 0] = 1.0
    z = (qx - mu) / sd
    folds = StratifiedKFold(5, shuffle=True, random_state=1)

    def oof_auc(c: float) -> float:
        model = LogisticRegression(C=c, max_iter=5000, class_weight="balanced")
        p = cross_val_predict(model, z, qy, cv=folds, method="decision_function")
        return float(roc_auc_score(qy, p))

    c2 = max((0.03, 0.1, 0.3, 1.0), key=oof_auc)
    stage2 = LogisticRegression(C=c2, max_iter=5000, class_weight="balanced").fit(z, qy)
    w = stage2.coef_[0] / sd
    fusion.answerable_weights = {k: round(float(v), 4) for k, v in zip(QUERY_FEATURES, w, strict=True)}
    fusion.answerable_intercept = round(float(stage2.intercept_[0] - (w * mu).sum()), 4)
    # The candidate floor: a list whose best candidate is this unlikely is no list (小区门口那家火锅店啥时候重新开业:
    # three candidates below 0.5 %, shown because the answerability model read its words as a citizen's own). The
    # highest on a grid that refuses at most one in a thousand answerable training questions.
    p1 = [f["p1"] for q, _, f, _ in rows if q.expected]
    fusion.clarify_threshold = max(t for t in CANDIDATE_FLOORS if sum(p < t for p in p1) <= 0.001 * len(p1))
    fusion.source += f" (C={c2})"
    # The no-answer lines, drawn on the answerable training questions: at most LINE_SHARE of those longer than
    # SHORT_QUESTION_WORDS refused, at most SHORT_LINE_SHARE of the short ones (docs/search.md, "Two lines").
    def line(share: float, short: bool) -> float:
        part = [(q, f) for q, _, f, _ in rows if is_short_question(f) == short]
        return round(threshold_for([[("", fusion.answerable(f))] for _, f in part], [q for q, _ in part], share), 4)

    fusion.answerable_threshold = line(LINE_SHARE, short=False)
    fusion.answerable_threshold_short = line(SHORT_LINE_SHARE, short=True)
    runs = [(q, hits, f) for q, hits, f, _ in runs]
    answerability = [fusion.answerable(f) for _, _, f in runs]

    # answer vs clarify: the lowest (threshold, margin) whose "answer" decisions are >= 97 % right on tuning.
    best = (1.0, 1.0)
    # Drawn as if every question were held to the lower, short questions' line: a stricter line for longer questions
    # then only turns some of them to no_answer, and lets no more through as outright answers (drawn above each
    # question's own line, the thresholds fell and twice as many near misses were answered outright).
    lowest = min(fusion.answerable_threshold, fusion.answerable_threshold_short)
    for margin in (0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3):
        for t in np.arange(0.3, 0.999, 0.005):
            chosen = [(q, hits[0].doc.entry_id) for (q, hits, _), a in zip(runs, answerability, strict=True)
                      if hits and a >= lowest and hits[0].score >= t
                      and hits[0].score - (hits[1].score if len(hits) > 1 else 0) >= margin]
            if len(chosen) < 10:
                continue
            precision = sum(1 for q, top in chosen if q.expected == top) / len(chosen)
            if precision >= 0.97:
                best = min(best, (float(t), margin))
                break
    fusion.answer_threshold, fusion.margin = round(best[0], 4), best[1]

    # The answer bar: the highest that still answers outright at least ANSWER_KEEP of the tuning half's questions
    # the line above answers rightly. The tuning half holds few subtle near misses, so precision there cannot
    # choose it; this bounds what the bar costs instead (the rest are shown as candidates).
    # A bar keeps exactly the right outright answers whose answerability clears it.
    right = [a for (q, hits, f), a in zip(runs, answerability, strict=True) if hits and q.expected ==
             hits[0].doc.entry_id and fusion.decide([h.score for h in hits], a, fusion.line(f)) == "answer"]
    fusion.answer_bar = max(b for b in np.round(np.arange(0.0, 0.96, 0.05), 2).tolist()
                            if sum(a >= b for a in right) >= ANSWER_KEEP * len(right))
    return fusion


def stage2_training(tune: Sequence[LabelledQuery]) -> list[LabelledQuery]:
    """Every question the answerability model learns from, in the fit's order."""
    return [*tune, *load_queries(CALIBRATION_DIR), *load_queries(TUNE_EXTRA_DIR)]


def vote_rows(training: Sequence[LabelledQuery]) -> list[dict[str, str | None]]:
    """VOTE_FILE's rows for these questions."""
    return [{"query": q.query, "entry": q.expected} if q.expected else {"query": q.query, "entry": None, "near": q.near}
            for q in training]


def _fold_indexes(index: SearchIndex, training: Sequence[LabelledQuery], encoder_dir: Path, folds: int = 5
                  ) -> list[tuple[np.ndarray, SearchIndex]]:
    """For each fold of the training questions: its rows, and an index of the same KB whose domain encoder learnt
    from the KB and the other folds' answerable questions, and whose vote holds the other folds' questions."""
    from sklearn.model_selection import StratifiedKFold

    ids = {d.entry_id for d in index.docs}
    synonyms = dict(index.processor.synonyms.mapping)
    seed = seed_near_misses(load_near_miss_file(), ids)
    y = np.asarray([1 if q.expected else 0 for q in training])
    out = []
    for rest, fold in StratifiedKFold(folds, shuffle=True, random_state=7).split(np.zeros(len(y)), y):
        rows = vote_rows([training[i] for i in rest])
        encoder = domain_encoder(training_entries(index.docs, answered_by_entry(rows)), synonyms, index.processor,
                                 encoder_dir)
        out.append((fold, SearchIndex(index.docs, index.processor, encoder, near_misses=seed,
                                      vote_examples=vote_examples(rows, ids))))
    return out


def fold_indexes_of(index: SearchIndex, tune: Sequence[LabelledQuery], encoder_dir: Path) -> list[SearchIndex]:
    """For each question of the tuning half, the fold index the fit scores it by (`_fold_indexes`)."""
    return _index_of_row(_fold_indexes(index, stage2_training(tune), encoder_dir), len(tune))


def _index_of_row(folds: list[tuple[np.ndarray, SearchIndex]], n: int) -> list[SearchIndex]:
    """The fold index of each of the first n training questions (the tuning half comes first)."""
    by_row = {int(i): fold_index for fold, fold_index in folds for i in fold}
    return [by_row[i] for i in range(n)]


def _out_of_fold_runs(folds: list[tuple[np.ndarray, SearchIndex]], fusion: Fusion, training: Sequence[LabelledQuery],
                      tune_only: set[str]) -> list[tuple[LabelledQuery, list[Any], dict[str, float], list[str]]]:
    """`_run` of every training question by its fold's index. The tuning-only set's unanswerable questions are in
    the near-miss seed: they are scored against a bank without them, as a near miss is met before anyone has filed
    it."""
    out: list[Any] = [None] * len(training)
    seed = [r for r in load_near_miss_file() if r[0] not in tune_only]
    for fold, index in folds:
        bank = index.near_misses
        without_own = NearMissBank(seed_near_misses(seed, {d.entry_id for d in index.docs}), index.processor,
                                   index.encoder, previous=bank, examples=bank.examples)
        for minus_own, fold_bank in ((False, bank), (True, without_own)):
            index.near_misses = fold_bank
            for i in fold:
                if (training[i].query in tune_only) == minus_own:
                    out[i] = _run(index, fusion, training[i])
        index.near_misses = bank
    return out


def _run(index: SearchIndex, fusion: Fusion, q: LabelledQuery
         ) -> tuple[LabelledQuery, list[Any], dict[str, float], list[str]]:
    """A query's ranked candidates under stage 1, its query-level features and the words its best entry leaves out."""
    hits = index.ranked(q.query, fusion)
    feats, uncovered = index.query_evidence(q.query, hits)
    return q, hits, feats, uncovered


def _fit_facet(fusion: Fusion, uncovered: list[list[str]], y: np.ndarray) -> np.ndarray:
    """The facet model: logistic regression over which words the best entry leaves out, so that the words a near
    miss asks about (车位, 开工, 末班车) weigh against an answer and a citizen's incidental words (老公, 上礼拜) do
    not. Its weights go into `fusion`; returned are out-of-fold scores of the training questions, so that the
    answerability model learns how far to trust it on questions it has not seen."""
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    vec = DictVectorizer()
    x = vec.fit_transform([dict.fromkeys(u, 1) for u in uncovered])
    model = LogisticRegression(C=1.0, max_iter=5000, class_weight="balanced")
    oof = cross_val_predict(model, x, y, cv=StratifiedKFold(5, shuffle=True, random_state=0),
                            method="decision_function")
    model.fit(x, y)
    fusion.facet_weights = {w: round(float(c), 4) for w, c in zip(vec.get_feature_names_out(), model.coef_[0],
                                                                   strict=True) if abs(c) >= 1e-3}
    fusion.facet_intercept = round(float(model.intercept_[0]), 4)
    return oof


def tune_and_save(encoder_dir: Path | None = None, path: Path = FUSION_FILE) -> dict[str, Any]:
    encoder_dir = encoder_dir or ROOT / "var" / "encoder"
    index = demo_index(encoder_dir)
    tune, held = split(load_queries())
    fusion = fit_fusion(index, tune, encoder_dir)
    fusion.save(path)
    rows = vote_rows(stage2_training(tune))
    VOTE_FILE.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    bank = index.near_misses
    index.near_misses = NearMissBank(bank.canon[: bank.n_soft], index.processor, index.encoder, previous=bank,
                                     examples=vote_examples(rows, {d.entry_id for d in index.docs}))
    return {"fusion": fusion.__dict__, "tune": evaluate_hybrid(index, fusion, tune),
            "heldout": evaluate_hybrid(index, fusion, held)}
