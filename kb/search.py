"""Hybrid search: BM25 + rapidfuzz + dense, fused into one calibrated probability, then a decision.

Candidates come from BM25 over questions, BM25 over answers and the dense index; every candidate entry is
then described by the same features (one per leg plus coverage), and a logistic model fitted on the tuning
half of the labelled development set turns them into P(this entry answers the question). The decision
thresholds on that probability were chosen on the same half (see `kb.tuning`).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import bm25s
import faiss
import numpy as np
from rapidfuzz import fuzz, process

from kb.encoder import Encoder
from kb.text import TextProcessor, cjk_count

logger = logging.getLogger(__name__)

FUSION_FILE = Path(__file__).parent / "data" / "fusion.json"
MAX_QUERY_CHARS = 300  # a 10,000-character paste is searched by its opening, which carries the question
FEATURES = ("dense", "fuzz", "pfuzz", "tset", "cov", "qcov", "ans", "bm25_rel", "dense_rel", "short")
FLAT_LIMIT = 200_000  # question vectors; above this an IVF index (recall measured by the bench)


@dataclass(frozen=True)
class Doc:
    entry_id: str
    version: int
    question: str
    similar_questions: tuple[str, ...]
    answer: str
    policy_basis: str
    unit: str
    category: str
    effective_from: date | None = None
    effective_to: date | None = None

    def in_effect(self, today: date) -> bool:
        return (self.effective_from is None or self.effective_from <= today) and (
            self.effective_to is None or today <= self.effective_to
        )


@dataclass
class Hit:
    doc: Doc
    matched_question: str
    score: float
    features: dict[str, float] = field(default_factory=dict)
    pos: int = -1  # position of the doc in its index


@dataclass
class SearchOutcome:
    decision: str  # answer | clarify | no_answer
    confidence: float
    hits: list[Hit]


QUERY_FEATURES = ("p1", "p2", "margin", "unc_max", "unc_mass", "oov", "words", "dense1",
                  "fuzz1", "pfuzz1", "cov1", "qcov1", "tset1", "ans1")


@dataclass
class Fusion:
    """Two calibrated stages, both logistic: P(candidate is the right entry) from the candidate features, and
    P(the KB answers this question at all) from the query-level features of the best candidate."""

    weights: dict[str, float]
    intercept: float
    answer_threshold: float
    clarify_threshold: float
    margin: float
    answerable_weights: dict[str, float] = field(default_factory=dict)
    answerable_intercept: float = 0.0
    answerable_threshold: float = 0.0
    source: str = "default"

    @classmethod
    def load(cls, path: Path = FUSION_FILE) -> Fusion:
        if path.exists():
            return cls(**json.loads(path.read_text(encoding="utf-8")))
        # Hand-set start used only before the first `hotline kb tune`.
        return cls({"dense": 3.0, "fuzz": 2.0, "pfuzz": 1.0, "tset": 1.0, "cov": 3.0, "qcov": 2.0, "ans": 0.5,
                    "bm25_rel": 1.0, "dense_rel": 2.0, "short": -0.5}, -7.5, 0.6, 0.3, 0.1)

    def save(self, path: Path = FUSION_FILE) -> None:
        path.write_text(json.dumps(self.__dict__, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")

    @staticmethod
    def _logistic(weights: dict[str, float], intercept: float, feats: dict[str, float]) -> float:
        z = intercept + sum(weights.get(k, 0.0) * v for k, v in feats.items())
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))

    def probability(self, feats: dict[str, float]) -> float:
        return self._logistic(self.weights, self.intercept, feats)

    def answerable(self, qfeats: dict[str, float]) -> float:
        if not self.answerable_weights:
            return 1.0
        return self._logistic(self.answerable_weights, self.answerable_intercept, qfeats)

    def decide(self, probs: Sequence[float], answerable: float = 1.0) -> str:
        if not probs or probs[0] < self.clarify_threshold or answerable < self.answerable_threshold:
            return "no_answer"
        second = probs[1] if len(probs) > 1 else 0.0
        if probs[0] >= self.answer_threshold and probs[0] - second >= self.margin:
            return "answer"
        return "clarify"


class SearchIndex:
    """Immutable once built; a rebuild makes a new one and the service swaps the reference."""

    def __init__(self, docs: Sequence[Doc], processor: TextProcessor, encoder: Encoder | None, kb_version: int = 0):
        started = time.perf_counter()
        self.docs = list(docs)
        self.processor = processor
        self.encoder = encoder
        self.kb_version = kb_version
        self.q_doc: list[int] = []
        self.q_text: list[str] = []
        for i, d in enumerate(self.docs):
            for q in (d.question, *d.similar_questions):
                self.q_doc.append(i)
                self.q_text.append(q)
        self.q_doc_arr = np.asarray(self.q_doc, dtype=np.int64)
        q_an = [processor.analyze(q) for q in self.q_text]
        self.q_canon = [a.canon for a in q_an]
        q_tokens = [a.tokens for a in q_an]
        self.q_tokset = [frozenset(t) for t in q_tokens]
        self.q_words = [" ".join(a.words) for a in q_an]
        a_an = [processor.analyze(d.answer) for d in self.docs]
        a_tokens = [a.tokens for a in a_an]
        self.a_tokset = [frozenset(t) for t in a_tokens]
        # All of an entry's text in one canonical string: a query word absent from it is a topic the entry
        # does not talk about, the strongest sign of a near-miss question the KB cannot answer.
        self.entry_questions: list[list[int]] = [[] for _ in self.docs]
        for qi, di in enumerate(self.q_doc):
            self.entry_questions[di].append(qi)
        self.entry_text = [" ".join([*(self.q_canon[qi] for qi in self.entry_questions[i]), a_an[i].canon])
                           for i in range(len(self.docs))]
        self.word_vocab = frozenset(w for a in (*q_an, *a_an) for w in a.words)
        df: dict[str, int] = {}
        for toks in self.q_tokset:
            for t in toks:
                df[t] = df.get(t, 0) + 1
        n = max(1, len(self.q_tokset))
        self.idf = {t: math.log(1 + (n - c + 0.5) / (c + 0.5)) for t, c in df.items()}
        self.max_idf = math.log(1 + (n + 0.5) / 0.5)

        self.bm25_q = self._bm25(q_tokens)
        self.bm25_a = self._bm25(a_tokens)

        self.vectors: np.ndarray | None = None
        self.faiss: faiss.Index | None = None
        if encoder is not None and self.q_text:
            if hasattr(encoder, "encode_static"):
                vecs = encoder.encode_static([a.static_string() for a in q_an])  # no second jieba pass
            else:
                vecs = encoder.encode(self.q_text)
            self.vectors = vecs.astype(np.float16)  # for exact re-scoring of candidates; half the memory
            self.faiss = self._faiss(vecs)
        self.build_seconds = time.perf_counter() - started

    @staticmethod
    def _bm25(tokens: list[list[str]]) -> bm25s.BM25 | None:
        if not tokens:
            return None
        model = bm25s.BM25(k1=1.2, b=0.75)
        model.index([t or ["∅"] for t in tokens], show_progress=False)
        return model

    @staticmethod
    def _faiss(vecs: np.ndarray) -> faiss.Index:
        dim = vecs.shape[1]
        if len(vecs) <= FLAT_LIMIT:
            index = faiss.IndexFlatIP(dim)
        else:
            nlist = int(4 * math.sqrt(len(vecs)))
            index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
            rng = np.random.default_rng(0)
            index.train(vecs[rng.choice(len(vecs), size=min(len(vecs), nlist * 40), replace=False)])
            index.nprobe = 16
        index.add(vecs)
        return index

    # -- legs ---------------------------------------------------------------------------------------------

    def _bm25_scores(self, model: bm25s.BM25 | None, tokens: list[str]) -> np.ndarray | None:
        if model is None:
            return None
        vocab = model.vocab_dict
        known = [t for t in tokens if t in vocab]
        if not known:
            return None
        return model.get_scores(known)

    def bm25_ranking(self, tokens: list[str], k: int) -> list[tuple[int, float]]:
        scores = self._bm25_scores(self.bm25_q, tokens)
        if scores is None:
            return []
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        return [(int(q), float(scores[q])) for q in top if scores[q] > 0]

    def dense_query(self, text: str) -> np.ndarray | None:
        if self.encoder is None or self.faiss is None:
            return None
        return self.encoder.encode([text])[0]

    def dense_ranking(self, qvec: np.ndarray | None, k: int) -> list[tuple[int, float]]:
        if qvec is None or self.faiss is None:
            return []
        scores, ids = self.faiss.search(qvec.reshape(1, -1), min(k, self.faiss.ntotal))
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]

    def fuzzy_ranking(self, canon: str, k: int) -> list[tuple[int, float]]:
        """Full scan; used by the bench's rapidfuzz-only figure, not by the hybrid (too slow at 100k)."""
        res = process.extract(canon, self.q_canon, scorer=fuzz.WRatio, limit=k)
        return [(int(i), float(s) / 100) for _, s, i in res]

    # -- hybrid -------------------------------------------------------------------------------------------

    def _coverage(self, tokens: list[str], target: frozenset[str]) -> float:
        total = sum(self.idf.get(t, self.max_idf) for t in tokens)
        if total <= 0:
            return 0.0
        return sum(self.idf.get(t, self.max_idf) for t in tokens if t in target) / total

    def candidates(self, query: str, today: date | None = None, pool: int = 40) -> list[Hit]:
        """Every plausible entry with its features, best first by the fused score of a default Fusion."""
        query = query[:MAX_QUERY_CHARS]
        canon = self.processor.canonical(query)
        tokens = self.processor.tokens(query)
        words = self.processor.words(query)
        if not canon or not self.docs:
            return []
        bm = self.bm25_ranking(tokens, pool)
        qvec = self.dense_query(query)
        dn = self.dense_ranking(qvec, pool)
        cand: set[int] = {self.q_doc[q] for q, _ in bm} | {self.q_doc[q] for q, _ in dn}
        a_scores = self._bm25_scores(self.bm25_a, tokens)
        if a_scores is not None:
            k = min(10, len(a_scores))
            cand |= {int(i) for i in np.argpartition(-a_scores, k - 1)[:k] if a_scores[i] > 0}
        if today is not None:
            cand = {i for i in cand if self.docs[i].in_effect(today)}
        if not cand:
            return []

        bm_best: dict[int, float] = {}
        for q, s in bm:
            d = self.q_doc[q]
            bm_best[d] = max(bm_best.get(d, 0.0), s)
        bm_top = max(bm_best.values(), default=0.0) or 1.0
        word_str = " ".join(words)
        q_len = len(canon.replace(" ", ""))
        hits: list[Hit] = []
        for d in cand:
            qis = self.entry_questions[d]
            dense = 0.0
            if qvec is not None and self.vectors is not None:
                dense = float((self.vectors[qis].astype(np.float32) @ qvec).max())
            best_q, best_f = qis[0], -1.0
            fz = pf = ts = cov = qcov = 0.0
            for qi in qis:
                c = self.q_canon[qi]
                r = fuzz.ratio(canon, c) / 100
                p = fuzz.partial_ratio(canon, c) / 100 if min(len(c), q_len) >= 4 else r
                t = fuzz.token_set_ratio(word_str, self.q_words[qi]) / 100
                cv = self._coverage(tokens, self.q_tokset[qi])
                qc = self._coverage(list(self.q_tokset[qi]), frozenset(tokens))
                fz, pf, ts, cov, qcov = max(fz, r), max(pf, p), max(ts, t), max(cov, cv), max(qcov, qc)
                local = r + cv + qc
                if local > best_f:
                    best_q, best_f = qi, local
            feats = {
                "dense": dense,
                "fuzz": fz,
                "pfuzz": pf,
                "tset": ts,
                "cov": cov,
                "qcov": qcov,
                "ans": self._coverage(tokens, self.a_tokset[d]),
                "bm25_rel": bm_best.get(d, 0.0) / bm_top,
                "dense_rel": 0.0,
                "short": 1.0 if cjk_count(canon) < 4 else 0.0,
            }
            hits.append(Hit(self.docs[d], self.q_text[best_q], 0.0, feats, d))
        best_dense = max(h.features["dense"] for h in hits)
        for h in hits:
            h.features["dense_rel"] = h.features["dense"] - best_dense
        return hits

    def search(self, query: str, fusion: Fusion, top_k: int = 5, today: date | None = None) -> SearchOutcome:
        hits = self.candidates(query, today)
        for h in hits:
            h.score = fusion.probability(h.features)
        hits.sort(key=lambda h: h.score, reverse=True)
        probs = [h.score for h in hits]
        qfeats = self.query_features(query, hits)
        decision = fusion.decide(probs, fusion.answerable(qfeats) if hits else 0.0)
        return SearchOutcome(decision, round(probs[0], 4) if probs else 0.0, hits[:top_k])

    def query_features(self, query: str, ranked: Sequence[Hit]) -> dict[str, float]:
        """Query-level evidence that the best candidate really covers what is asked."""
        if not ranked:
            return dict.fromkeys(QUERY_FEATURES, 0.0)
        top = ranked[0]
        words = [w for w in self.processor.words(query[:MAX_QUERY_CHARS]) if len(w) >= 2 or cjk_count(w) == 0]
        text = self.entry_text[top.pos]
        idf = [(w, self.idf.get(w, self.max_idf)) for w in words]
        total = sum(i for _, i in idf) or 1.0
        uncovered = [i for w, i in idf if w not in text]
        return {
            "p1": top.score,
            "p2": ranked[1].score if len(ranked) > 1 else 0.0,
            "margin": top.score - (ranked[1].score if len(ranked) > 1 else 0.0),
            "unc_max": max(uncovered, default=0.0) / self.max_idf,
            "unc_mass": sum(uncovered) / total,
            "oov": sum(1 for w in words if w not in self.word_vocab) / max(1, len(words)),
            "words": min(len(words), 12) / 12,
            "dense1": top.features.get("dense", 0.0),
            **{f"{k}1": top.features.get(k, 0.0) for k in ("fuzz", "pfuzz", "cov", "qcov", "tset", "ans")},
        }

    def stats(self) -> dict[str, object]:
        return {
            "entries": len(self.docs),
            "questions": len(self.q_text),
            "kb_version": self.kb_version,
            "encoder": getattr(self.encoder, "name", None),
            "build_seconds": round(self.build_seconds, 3),
        }
