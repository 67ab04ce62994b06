"""Hybrid search: BM25 + rapidfuzz + dense, fused into one calibrated probability, then a decision.

Candidates come from BM25 over questions, BM25 over answers and the dense index; every candidate entry is
then described by the same features (one per leg plus coverage), and a logistic model fitted on the tuning
half of the labelled development set turns them into P(this entry answers the question). The decision
thresholds on that probability were chosen on the same half (see `kb.tuning`).
"""

from __future__ import annotations

import ctypes
import json
import logging
import math
import os
import re
import time
from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import bm25s
import faiss
import numpy as np
from bm25s.tokenization import Tokenized
from rapidfuzz import fuzz, process
from scipy.sparse import csr_matrix

from kb.encoder import Encoder
from kb.text import TextProcessor, analyzer, char_grams, cjk_count, normalize

logger = logging.getLogger(__name__)

FUSION_FILE = Path(__file__).parent / "data" / "fusion.json"
MAX_QUERY_CHARS = 300  # a 10,000-character paste is searched by its opening, which carries the question
FEATURES = ("dense", "fuzz", "pfuzz", "tset", "cov", "qcov", "ans", "bm25_rel", "dense_rel", "short")
FLAT_LIMIT = 200_000  # question vectors; above this an IVF index (recall measured by the bench)
BUILD_CHUNK = 20_000  # texts analysed at a time; two chunks' analyses are alive at once while pipelining


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:  # Linux; elsewhere the figure is simply missing
            return round(int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)
    except (OSError, ValueError, IndexError):
        return float("nan")


def release_freed_memory() -> None:
    """Hands the heap pages that freed objects left behind back to the OS (glibc; elsewhere a no-op). Between
    the build's phases this keeps one phase's garbage from adding to the next phase's peak."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


@dataclass(frozen=True, slots=True)  # slots: 100k entries are held in memory alongside the index
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
                  "fuzz1", "pfuzz1", "cov1", "qcov1", "tset1", "ans1", "nm", "nm_gap", "knn", "facet")
KNN = 5  # neighbours in the vote between the KB's questions and the bank's
SHORT_QUESTION_WORDS = 3  # a question of this many content words or fewer has its own no-answer line


def is_short_question(qfeats: Mapping[str, float]) -> bool:
    """SHORT_QUESTION_WORDS content words or fewer (`words` is content words / 12)."""
    return qfeats.get("words", 1.0) * 12 <= SHORT_QUESTION_WORDS + 1e-9


# A query holding (nearly) all of a known unanswerable question is refused outright, unless one of the top entry's own
# questions is held as fully: the near miss is then the entry's own question (say a new entry now answers it).
KNOWN_SHARE = 0.9
KNOWN_MIN_GRAMS = 6  # bigrams, about seven characters


_CODE = re.compile(r"[0-9a-z]*[0-9][0-9a-z]*")


def _incidental(word: str) -> bool:
    """A word that by its shape says nothing about what is asked: a number, date or code of three characters or
    more (2026, 13812340001, gd20261203), or one character said three times or more (啊啊啊; 滴滴 and 妈妈 are
    words). The caller still keeps one the KB knows (12345)."""
    return len(word) >= 3 and (_CODE.fullmatch(word) is not None or len(set(word)) == 1)


_LATIN_RUN = re.compile(r"[0-9a-z]+")
DISTRICTS_FILE = Path(__file__).parent / "data" / "districts.txt"


def _district_pattern(path: Path = DISTRICTS_FILE) -> re.Pattern[str] | None:
    names = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()
             if ln.strip() and not ln.startswith("#")] if path.exists() else []
    return re.compile("(?:" + "|".join(map(re.escape, names)) + ")(?:新区|区)?") if names else None


_DISTRICT = _district_pattern()
_REPEAT = re.compile(r"([\u4e00-\u9fff])\1{2,}")


def top_positions(scores: np.ndarray, k: int, block: int = 1024) -> np.ndarray:
    """Positions of the k highest positive scores (unordered). A selection over 500k BM25 scores cost 4-6 ms a
    search; the k-th highest block maximum is a floor no top-k score lies under (k blocks each hold one score at
    least that high), so only the few scores above it are selected among."""
    n = len(scores)
    k = min(k, n)
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    nb = n // block
    if nb < 4 * k:  # too few blocks for the floor to prune much
        top = np.argpartition(-scores, k - 1)[:k]
        return top[scores[top] > 0]
    maxes = scores[: nb * block].reshape(nb, block).max(axis=1)
    if n > nb * block:
        maxes = np.append(maxes, scores[nb * block :].max())
    floor = np.partition(maxes, len(maxes) - k)[len(maxes) - k]
    cand = np.flatnonzero(scores >= floor) if floor > 0 else np.flatnonzero(scores > 0)
    if len(cand) > k:
        cand = cand[np.argpartition(-scores[cand], k - 1)[:k]]
    return cand[scores[cand] > 0]


@dataclass(frozen=True)
class VoteExamples:
    """Labelled questions that take part in the neighbour vote (`knn`) only: questions written for the demo KB that
    it answers (beside the KB's own questions) and that it does not (beside the bank's). More labelled neighbours on
    both sides let the vote tell a near miss from a plainly worded answerable question (docs/search.md)."""

    unanswered: tuple[str, ...] = ()
    answered: tuple[str, ...] = ()


class NearMissBank:
    """Questions known to have no answer in the KB: near misses written for it, the open 查无 items, and (for the
    known-question rule only) the 查无 items the office rejected.

    A near miss (公积金贷款能买车位吗) looks answerable to every leg; one very like a question already known to be
    unanswerable probably is not. Closeness is the best share of a bank question's character bigrams that the
    query contains. It is one-sided on purpose: a query holding a known near miss (我想问公积金贷款能不能买车位) is
    close to it, while a plain question that a longer near miss merely contains (居住证怎么办理 in
    港澳台居民居住证怎么办理) is not: the near miss's extra words are what the KB lacks. (A token-set ratio scores
    both 100 and refused such plain questions.) With an encoder, the bank's questions are also held as vectors for
    the neighbour vote (`knn`). The bank changes with every 查无 item, so it lives beside the index and is swapped
    on its own; a search costs one sparse product over the bank's bigrams and one dense product over its vectors."""

    def __init__(self, texts: Sequence[str] = (), processor: TextProcessor | None = None,
                 encoder: Encoder | None = None, previous: NearMissBank | None = None,
                 rule_only: Sequence[str] = (), examples: VoteExamples = VoteExamples()):
        """`rule_only`: questions refused when asked again (the known-question rule) that take no part in the soft
        evidence (`nm`, the vote): the 查无 items the office rejected. A rejection decides that question; replayed
        as evidence about its neighbours, other hands' near misses refused more answerable questions than they
        caught (bench `quality.rejection_loop`). `examples`: labelled questions for the vote alone."""
        def canonical(items: Iterable[str]) -> list[str]:
            return list(dict.fromkeys(c for c in map(processor.canonical, items) if c.strip())) if processor else []

        soft = canonical(texts)
        self.n_soft = len(soft)  # the first n_soft rows are evidence; the rest only feed the rule
        self.canon = list(dict.fromkeys([*soft, *canonical(rule_only)]))
        self.examples = examples
        # The vote's two sides: the soft rows and the unanswered examples, and the answered examples.
        self.vote_canon = list(dict.fromkeys([*soft, *canonical(examples.unanswered)]))
        self.answered_canon = canonical(examples.answered)
        self.encoder = encoder
        self.vectors, self.answered_vectors = self._encode(previous)
        self._vocab: dict[str, int] = {}
        rows = [[self._vocab.setdefault(g, len(self._vocab)) for g in self._grams(c)] for c in self.canon]
        indptr = np.cumsum([0] + [len(r) for r in rows])
        self._grams_of = csr_matrix((np.ones(int(indptr[-1]), dtype=np.float32),
                                     np.fromiter((g for r in rows for g in r), dtype=np.int64, count=int(indptr[-1])),
                                     indptr), shape=(len(rows), max(1, len(self._vocab)))).tocsc()
        self._sizes = np.maximum(np.diff(indptr), 1).astype(np.float32)

    def _encode(self, previous: NearMissBank | None) -> tuple[np.ndarray | None, np.ndarray | None]:
        """The vote's questions in the dense space, both sides (`knn`). A swap after a 查无 item re-encodes only the
        questions the previous bank did not hold, with the same encoder."""
        if self.encoder is None:
            return None, None
        known: dict[str, np.ndarray] = {}
        if previous is not None and previous.encoder is self.encoder:
            for texts, vecs in ((previous.vote_canon, previous.vectors),
                                (previous.answered_canon, previous.answered_vectors)):
                if vecs is not None:
                    known.update(zip(texts, vecs, strict=True))
        new = [c for c in dict.fromkeys([*self.vote_canon, *self.answered_canon]) if c not in known]
        if new:
            known.update(zip(new, self.encoder.encode(new), strict=True))

        def stack(texts: list[str]) -> np.ndarray | None:
            return np.ascontiguousarray([known[c] for c in texts], dtype=np.float32) if texts else None

        return stack(self.vote_canon), stack(self.answered_canon)

    @staticmethod
    def _top(vectors: np.ndarray | None, qvec: np.ndarray | None, k: int) -> np.ndarray:
        if qvec is None or vectors is None:
            return np.zeros(0, dtype=np.float32)
        sims = vectors @ qvec
        k = min(k, len(sims))
        return -np.sort(-sims[np.argpartition(-sims, k - 1)[:k]])

    def nearest(self, qvec: np.ndarray | None, k: int) -> np.ndarray:
        """Cosines of the k questions known to have no answer nearest the query vector, best first."""
        return self._top(self.vectors, qvec, k)

    def nearest_answered(self, qvec: np.ndarray | None, k: int) -> np.ndarray:
        """The same for the labelled questions the KB answers."""
        return self._top(self.answered_vectors, qvec, k)

    @staticmethod
    def _grams(canon: str) -> set[str]:
        text = canon.replace(" ", "")
        return {text[i : i + 2] for i in range(len(text) - 1)} or ({text} if text else set())

    def __len__(self) -> int:
        return len(self.canon)

    def closeness(self, canon: str) -> float:
        """The best share of a soft-evidence bank question's bigrams found in the query (`match`)."""
        return self.match(canon)[0]

    def match(self, canon: str) -> tuple[float, float]:
        """The best share of a soft-evidence bank question's bigrams found in the query, and the best share over
        the whole bank. Only questions long enough to say something on their own count: a 查无 item as short as
        低保 must neither shadow nor weigh against every question that mentions 低保."""
        ids = [self._vocab[g] for g in self._grams(canon) if g in self._vocab]
        if not self.canon or not ids:
            return 0.0, 0.0
        share = np.asarray(self._grams_of[:, ids].sum(axis=1)).ravel() / self._sizes
        share[self._sizes < KNOWN_MIN_GRAMS] = 0.0
        return float(share[: self.n_soft].max()) if self.n_soft else 0.0, float(share.max())

    def entry_share(self, canon: str, questions: Sequence[str]) -> float:
        """The same share for an entry's own questions: how fully the query holds one of them."""
        grams = self._grams(canon)
        return max((len(grams & g) / len(g) for g in map(self._grams, questions) if g), default=0.0)


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
    # The no-answer line for questions of SHORT_QUESTION_WORDS content words or fewer (None: the same line). Short
    # questions are what citizens type most, and the ones the line refuses most often when the KB does answer them.
    answerable_threshold_short: float | None = None
    # An outright answer also needs this much confidence that the KB answers at all; below it, the candidates
    # (right entry first, most of the time) with 都不是. A near miss answered with the wrong entry is the costliest
    # mistake search makes.
    answer_bar: float = 0.0
    # Which words a question asks about that its best entry leaves out: a weight per word (a near miss's 车位,
    # 宅基地, 末班车 push towards no answer; a citizen's 老公, 上礼拜 do not), learnt from labelled questions.
    facet_weights: dict[str, float] = field(default_factory=dict)
    facet_intercept: float = 0.0
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

    def probabilities(self, feats: Sequence[dict[str, float]]) -> list[float]:
        """`probability` of many candidates in one product."""
        if not feats:
            return []
        names = list(self.weights)
        x = np.asarray([[f.get(k, 0.0) for k in names] for f in feats])
        z = np.clip(self.intercept + x @ np.asarray([self.weights[k] for k in names]), -30.0, 30.0)
        return (1.0 / (1.0 + np.exp(-z))).tolist()

    def facet(self, uncovered: Iterable[str]) -> float:
        """The facet model's log-odds that a question whose best entry leaves these words out is answerable."""
        return self.facet_intercept + sum(self.facet_weights.get(w, 0.0) for w in set(uncovered))

    def answerable(self, qfeats: dict[str, float]) -> float:
        if not self.answerable_weights:
            return 1.0
        return self._logistic(self.answerable_weights, self.answerable_intercept, qfeats)

    def line(self, qfeats: Mapping[str, float]) -> float:
        """The no-answer line for this question: its own for a short one."""
        if self.answerable_threshold_short is not None and is_short_question(qfeats):
            return self.answerable_threshold_short
        return self.answerable_threshold

    def decide(self, probs: Sequence[float], answerable: float = 1.0, line: float | None = None) -> str:
        """`line`: the no-answer line of this question (`line`); the general one when not given."""
        line = self.answerable_threshold if line is None else line
        if not probs or probs[0] < self.clarify_threshold or answerable < line:
            return "no_answer"
        second = probs[1] if len(probs) > 1 else 0.0
        if probs[0] >= self.answer_threshold and probs[0] - second >= self.margin and answerable >= self.answer_bar:
            return "answer"
        return "clarify"


class TextColumn(Sequence[str]):
    """Many short texts kept as one string plus offsets. At 100k entries, 500k questions as separate Python
    strings cost ~75 bytes of object header each and, being long-lived, pinned the heap pages of the build's
    short-lived analyses (~100 MB of the peak)."""

    def __init__(self, parts: Sequence[str] = (), lengths: Sequence[int] = ()):
        self._text = "".join(parts)
        self._ends = np.cumsum(np.asarray(lengths, dtype=np.int64))
        if len(self._ends) and self._ends[-1] != len(self._text):
            raise ValueError("lengths do not add up to the text")

    def __len__(self) -> int:
        return len(self._ends)

    def __getitem__(self, i: int) -> str:  # type: ignore[override]
        if i < 0:
            i += len(self._ends)
        if not 0 <= i < len(self._ends):
            raise IndexError(i)
        return self._text[(self._ends[i - 1] if i else 0) : self._ends[i]]

    def take(self, indices: Sequence[int]) -> list[str]:
        """Many texts at once: one vectorised lookup of their offsets instead of a method call each."""
        at = np.asarray(indices, dtype=np.int64)
        ends = self._ends[at]
        starts = np.where(at > 0, self._ends[np.maximum(at - 1, 0)], 0)
        text = self._text
        return [text[a:b] for a, b in zip(starts.tolist(), ends.tolist(), strict=True)]

    def __iter__(self):  # type: ignore[no-untyped-def]
        start = 0
        for end in self._ends.tolist():
            yield self._text[start:end]
            start = end

    def __eq__(self, other: object) -> bool:
        return list(self) == list(other) if isinstance(other, Sequence) else NotImplemented

    __hash__ = None  # type: ignore[assignment]


class IdRows(Sequence[list[int]]):
    """Token-id rows kept as CSR arrays (int32) while they are built, handed to bm25s as lists one row at a time.
    At 100k entries, 500k question rows and 100k answer rows as Python lists of ints were 300 MB of the build's peak.
    Append every row before reading: the arrays read are views of the buffers they were appended to."""

    def __init__(self) -> None:
        self._tok = array("i")
        self._lengths = array("q")
        self._ptr: np.ndarray | None = None

    def append(self, ids: list[int]) -> None:
        self._tok.extend(ids)
        self._lengths.append(len(ids))
        self._ptr = None

    def extend(self, rows: Iterable[list[int]]) -> None:
        for ids in rows:
            self.append(ids)

    def csr(self) -> tuple[np.ndarray, np.ndarray]:
        """(row pointers int64, token ids int32)."""
        if self._ptr is None:
            self._ptr = np.zeros(len(self._lengths) + 1, dtype=np.int64)
            np.cumsum(np.frombuffer(self._lengths, dtype=np.int64), out=self._ptr[1:])
        return self._ptr, np.frombuffer(self._tok, dtype=np.int32)

    def __len__(self) -> int:
        return len(self._lengths)

    def __getitem__(self, i: int) -> list[int]:  # type: ignore[override]
        ptr, tok = self.csr()
        return tok[ptr[i] : ptr[i + 1]].tolist()

    def __iter__(self) -> Iterator[list[int]]:
        ptr, tok = self.csr()
        bounds = ptr.tolist()
        for a, b in zip(bounds, bounds[1:], strict=False):
            yield tok[a:b].tolist()


class _NonEmptyRows(Sequence[list[int]]):
    """Rows with an empty one standing as the placeholder token, so every document has a length (bm25s)."""

    def __init__(self, rows: IdRows, empty: int):
        self.rows, self.empty = rows, empty

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> list[int]:  # type: ignore[override]
        return self.rows[i] or [self.empty]

    def __iter__(self) -> Iterator[list[int]]:
        return (r or [self.empty] for r in self.rows)


class SearchIndex:
    """Immutable once built; a rebuild makes a new one and the service swaps the reference.

    Token sets are kept as CSR arrays of token ids, not Python sets: at 100k entries (500k questions) that is
    tens of megabytes instead of gigabytes.
    """

    def __init__(self, docs: Sequence[Doc], processor: TextProcessor, encoder: Encoder | None, kb_version: int = 0,
                 near_misses: Sequence[str] = (), rule_only_near_misses: Sequence[str] = (),
                 vote_examples: VoteExamples = VoteExamples(), previous_bank: NearMissBank | None = None):
        """`previous_bank`: the bank of the index this one replaces, whose vectors are reused while the encoder is
        the same (a publication rebuilds with the serving encoder: the seed and the vote's examples need not be
        encoded again)."""
        started = time.perf_counter()
        self.docs = list(docs)
        self.processor = processor
        self.encoder = encoder
        self.kb_version = kb_version
        self.near_misses = NearMissBank(near_misses, processor, encoder,  # replaced whole when 查无 items change
                                        previous=previous_bank, rule_only=rule_only_near_misses,
                                        examples=vote_examples)
        q_doc: list[int] = []
        q_local: list[int] = []
        q_text: list[str] = []
        for i, d in enumerate(self.docs):
            for j, q in enumerate((d.question, *d.similar_questions)):
                q_doc.append(i)
                q_local.append(j)
                q_text.append(q)
        self.timings: dict[str, float] = {}
        mark = time.perf_counter()

        self.memory_mb: dict[str, float] = {"start": _rss_mb()}  # after each phase: where a large KB's memory goes

        def phase(name: str) -> None:
            nonlocal mark
            release_freed_memory()
            now = time.perf_counter()
            self.timings[name] = round(now - mark, 2)
            self.memory_mb[name] = _rss_mb()
            mark = now

        self.q_doc = np.asarray(q_doc, dtype=np.int32)
        self.q_local = np.asarray(q_local, dtype=np.int16)
        self.entry_questions: list[range] = []
        start = 0
        for d in self.docs:
            n = 1 + len(d.similar_questions)
            self.entry_questions.append(range(start, start + n))
            start += n

        # Streamed in chunks: the per-text analyses of a 100k-entry KB would not fit in memory at once.
        canon_parts: list[str] = []
        words_parts: list[str] = []
        canon_lengths: list[int] = []
        words_lengths: list[int] = []
        words_seen: set[str] = set()
        self.vocab: dict[str, int] = {}
        q_ids = IdRows()
        # Vectors go into the index chunk by chunk. Above FLAT_LIMIT they wait in float16 for the IVF training
        # sample (half the memory of float32; the index quantises to 8 bits anyway).
        ivf = encoder is not None and len(q_text) > FLAT_LIMIT
        flat = faiss.IndexFlatIP(encoder.dim) if encoder is not None and not ivf else None
        waiting = np.zeros((len(q_text), encoder.dim), dtype=np.float16) if ivf else None
        static = hasattr(encoder, "encode_analyses")
        answers = [d.answer for d in self.docs]
        starts = list(range(0, len(q_text), BUILD_CHUNK))
        with analyzer(processor, len(q_text)) as analyze:
            # One chunk ahead: the workers segment the next chunk while this process indexes the current one,
            # and canonicalise the answers while it builds the questions' BM25.
            pending = analyze.submit(q_text[: BUILD_CHUNK])
            answers_pending = analyze.submit_canonical(answers) if not starts else None
            for k, c in enumerate(starts):
                an = pending()
                if k + 1 < len(starts):
                    pending = analyze.submit(q_text[starts[k + 1] : starts[k + 1] + BUILD_CHUNK])
                else:
                    answers_pending = analyze.submit_canonical(answers)
                words = [" ".join(a.words) for a in an]
                canon_parts.append("".join(a.canon for a in an))
                canon_lengths.extend(len(a.canon) for a in an)
                words_parts.append("".join(words))
                words_lengths.extend(map(len, words))
                del words
                words_seen.update(w for a in an for w in a.words)
                q_ids.extend(self._ids(a.tokens, self.vocab, grow=True) for a in an)
                if encoder is not None:
                    vecs = (encoder.encode_analyses(an) if static  # type: ignore[union-attr]
                            else encoder.encode(q_text[c : c + len(an)]))
                    if flat is not None:
                        flat.add(np.ascontiguousarray(vecs, dtype=np.float32))
                    else:
                        waiting[c : c + len(an)] = vecs  # type: ignore[index]
                del an
            self.q_canon = TextColumn(canon_parts, canon_lengths)
            self.q_words = TextColumn(words_parts, words_lengths)
            del canon_parts, words_parts, canon_lengths, words_lengths
            phase("analyse_and_encode_questions")
            self.word_vocab = frozenset(words_seen)
            self.q_ptr, self.q_tok = q_ids.csr()
            df = np.bincount(self.q_tok, minlength=len(self.vocab)) if len(self.q_tok) else np.zeros(len(self.vocab))
            n = max(1, len(q_ids))
            self.idf = np.log(1 + (n - df + 0.5) / (df + 0.5)).astype(np.float32)
            self.max_idf = math.log(1 + (n + 0.5) / 0.5)
            # Plain floats for the query's own token weights; the questions' idf totals are precomputed for coverage.
            self.idf_list: list[float] = self.idf.tolist()
            rows_of_tokens = np.repeat(np.arange(len(q_ids), dtype=np.int32), np.diff(self.q_ptr))
            self.q_idf_total = np.bincount(rows_of_tokens, weights=self.idf[self.q_tok].astype(np.float64),
                                           minlength=len(q_ids))
            del rows_of_tokens
            self.bm25_q = self._bm25(q_ids, self.vocab)
            del q_ids
            phase("bm25_questions")
            # The vectors waiting for the IVF are dropped before the answers' BM25, the build's peak.
            self.faiss: faiss.Index | None = flat if flat is not None and flat.ntotal else None
            if waiting is not None and len(waiting):
                self.faiss = self._ivf(waiting)
            del waiting
            phase("faiss")
            assert answers_pending is not None
            answers_canon = answers_pending()

        self.a_vocab: dict[str, int] = {}
        a_ids = IdRows()
        a_ids.extend(self._ids(char_grams(c), self.a_vocab, grow=True) for c in answers_canon)
        del answers_canon, answers
        self.bm25_a = self._bm25(a_ids, self.a_vocab)
        del a_ids
        # The answers' postings (bigram → entries) answer "which candidates mention this bigram" for the `ans`
        # feature; no second copy of 100k answers' bigrams is kept. Binary search needs them sorted.
        self.a_postings = self._sorted_postings(self.bm25_a)
        phase("answers")
        self.build_seconds = time.perf_counter() - started

    @property
    def q_text(self) -> list[str]:
        return [self.question_text(i) for i in range(len(self.q_doc))]

    def question_text(self, qi: int) -> str:
        d = self.docs[int(self.q_doc[qi])]
        j = int(self.q_local[qi])
        return d.question if j == 0 else d.similar_questions[j - 1]

    @staticmethod
    def _ids(tokens: list[str], vocab: dict[str, int], grow: bool = False) -> list[int]:
        out = []
        for t in dict.fromkeys(tokens):
            i = vocab.get(t)
            if i is None and grow:
                i = vocab[t] = len(vocab)
            if i is not None:
                out.append(i)
        return out

    @staticmethod
    def _bm25(ids: IdRows, vocab: dict[str, int]) -> bm25s.BM25 | None:
        if not len(ids):
            return None
        empty = vocab.setdefault("∅", len(vocab))
        model = bm25s.BM25(k1=1.2, b=0.75, csc_backend="scipy")
        # bm25s takes any sequence of rows in its (ids, vocab) object form; its plain tuple form insists on a list
        model.index(Tokenized(ids=_NonEmptyRows(ids, empty), vocab=vocab), show_progress=False)  # type: ignore[arg-type]
        return model

    @staticmethod
    def _ivf(vecs: np.ndarray) -> faiss.Index:
        """Inverted lists with 8-bit scalar quantisation: a quarter of the memory of exact search. Its recall
        against exact search is printed by `make bench` (bench `index.ivf_recall`)."""
        dim = vecs.shape[1]
        nlist = max(1, int(math.sqrt(len(vecs))))  # ~700 lists at 500k vectors: quick to train, 16 probed
        index = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(dim), dim, nlist, faiss.ScalarQuantizer.QT_8bit,
                                              faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(0)
        sample = np.sort(rng.choice(len(vecs), size=min(len(vecs), nlist * 40), replace=False))
        index.train(vecs[sample].astype(np.float32))
        for c in range(0, len(vecs), BUILD_CHUNK):
            index.add(vecs[c : c + BUILD_CHUNK].astype(np.float32))
        index.nprobe = 16
        index.make_direct_map()
        return index

    def question_vectors(self, qis: Sequence[int]) -> np.ndarray:
        assert self.faiss is not None
        return self.faiss.reconstruct_batch(np.asarray(qis, dtype=np.int64))

    # -- legs ---------------------------------------------------------------------------------------------

    def _bm25_scores(self, model: bm25s.BM25 | None, ids: list[int]) -> np.ndarray | None:
        if model is None or not ids:
            return None
        return model.get_scores(ids)

    def bm25_ranking(self, tokens: list[str], k: int) -> list[tuple[int, float]]:
        scores = self._bm25_scores(self.bm25_q, self._ids(tokens, self.vocab))
        if scores is None:
            return []
        return [(int(q), float(scores[q])) for q in top_positions(scores, k)]

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

    def _weight(self, tid: int) -> float:
        return self.idf_list[tid] if tid >= 0 else self.max_idf

    @staticmethod
    def _sorted_postings(model: bm25s.BM25 | None) -> tuple[np.ndarray, np.ndarray] | None:
        if model is None:
            return None
        indptr, indices = model.scores["indptr"], model.scores["indices"]
        # Sorted within every column: each step rises except where a new column starts. Checked without a
        # per-posting column array, which at 100k answers was a 300 MB spike in the build's peak memory.
        falls = np.diff(indices) <= 0
        falls[indptr[1:-1][(indptr[1:-1] > 0) & (indptr[1:-1] < len(indices))] - 1] = False
        if falls.any():  # bm25s keeps each column's documents in order today
            column = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
            order = np.lexsort((indices, column))
            indices = indices[order]
            model.scores["data"] = model.scores["data"][order]
            model.scores["indices"] = indices
        return indptr, indices

    def _answer_mentions(self, grams: list[int], docs: list[int]) -> np.ndarray:
        """For each doc, how many of the answer-vocabulary bigram ids `grams` its answer contains."""
        counts = np.zeros(len(docs))
        if self.a_postings is None or not docs:
            return counts
        indptr, indices = self.a_postings
        wanted = np.asarray(docs)
        for g in grams:
            posting = indices[indptr[g] : indptr[g + 1]]
            if not len(posting):
                continue
            at = np.searchsorted(posting, wanted)
            counts += (at < len(posting)) & (posting[np.minimum(at, len(posting) - 1)] == wanted)
        return counts

    def without_incidentals(self, query: str) -> str:
        """The query (normalised) without words that by their shape say nothing about what is asked: a number or
        code of three characters or more that the KB does not know (an order number, a phone number, a year) and a
        character said three times or more (啊啊啊). Such a word moved every similarity of 居住证怎么办理（2ca216）
        to its entry, and the question was refused. A query of nothing else is kept as it is."""
        text = normalize(query[:MAX_QUERY_CHARS])
        kept = _LATIN_RUN.sub(lambda m: m[0] if not _incidental(m[0]) or self._knows(m[0]) else " ", text)
        kept = _REPEAT.sub(" ", kept)
        return kept if kept.strip() else text

    def _knows(self, token: str) -> bool:
        """The KB uses the token, itself or through the synonym table (12345 → 市民服务热线)."""
        return token in self.vocab or token in self.word_vocab or self.processor.synonyms.apply(token) != token

    def candidates(self, query: str, today: date | None = None, pool: int = 40) -> list[Hit]:
        """Every plausible entry with its features (unsorted; the fusion scores them)."""
        query = self.without_incidentals(query)
        an = self.processor.analyze(query)
        canon, tokens, words = an.canon, an.tokens, an.words
        if not canon or not self.docs:
            return []
        bm = self.bm25_ranking(tokens, pool)
        qvec = self.dense_query(query)
        dn = self.dense_ranking(qvec, pool)
        cand: set[int] = {int(self.q_doc[q]) for q, _ in bm} | {int(self.q_doc[q]) for q, _ in dn}
        a_query = self._ids(char_grams(canon), self.a_vocab)
        a_scores = self._bm25_scores(self.bm25_a, a_query)
        if a_scores is not None:
            cand |= set(top_positions(a_scores, 10).tolist())
        if today is not None:
            cand = {i for i in cand if self.docs[i].in_effect(today)}
        if not cand:
            return []

        bm_best: dict[int, float] = {}
        for q, s in bm:
            d = int(self.q_doc[q])
            bm_best[d] = max(bm_best.get(d, 0.0), s)
        bm_top = max(bm_best.values(), default=0.0) or 1.0
        unknown = -1
        q_weights: dict[int, float] = {}
        for t in dict.fromkeys(tokens):
            tid = self.vocab.get(t, unknown)
            key = tid if tid >= 0 else unknown - len(q_weights)  # every unknown token counts on its own
            q_weights[key] = self._weight(tid)
        q_total = sum(q_weights.values())
        n_a = max(1, len(dict.fromkeys(char_grams(canon))))
        word_str = " ".join(words)
        q_len = len(canon.replace(" ", ""))
        hits: list[Hit] = []
        order = list(cand)
        # Every candidate question scored at once (rapidfuzz's cdist loops in C), then the best per entry.
        all_q = [qi for d in order for qi in self.entry_questions[d]]
        starts = np.cumsum([0] + [len(self.entry_questions[d]) for d in order[:-1]])
        canons = self.q_canon.take(all_q)
        ratio = process.cdist([canon], canons, scorer=fuzz.ratio, dtype=np.float64)[0] / 100
        partial = process.cdist([canon], canons, scorer=fuzz.partial_ratio, dtype=np.float64)[0] / 100
        short_q = np.fromiter((min(len(c), q_len) < 4 for c in canons), dtype=bool, count=len(canons))
        partial = np.where(short_q, ratio, partial)  # partial ratio of a 2-character text says nothing
        tset = process.cdist([word_str], self.q_words.take(all_q), scorer=fuzz.token_set_ratio,
                             dtype=np.float64)[0] / 100
        # idf share of the query found in each question, and of each question found in the query
        cov, qcov = self._coverage(np.asarray(all_q, dtype=np.int64), q_weights, q_total)
        local = ratio + cov + qcov
        best_of = {name: np.maximum.reduceat(arr, starts).tolist()
                   for name, arr in (("fuzz", ratio), ("pfuzz", partial), ("tset", tset), ("cov", cov),
                                     ("qcov", qcov))}
        dense_of = [0.0] * len(order)
        if qvec is not None and self.faiss is not None:  # one reconstruction and product for every candidate
            dense_of = np.maximum.reduceat(self.question_vectors(all_q) @ qvec, starts).tolist()
        ends = [*starts[1:].tolist(), len(all_q)]
        mentions = (self._answer_mentions(a_query, order) / n_a).tolist()
        for n, d in enumerate(order):
            s0, s1 = int(starts[n]), ends[n]
            best_q = all_q[s0 + int(np.argmax(local[s0:s1]))]  # the first of equals, as before
            dense = dense_of[n]
            feats = {
                "dense": dense,
                "fuzz": best_of["fuzz"][n],
                "pfuzz": best_of["pfuzz"][n],
                "tset": best_of["tset"][n],
                "cov": best_of["cov"][n],
                "qcov": best_of["qcov"][n],
                "ans": mentions[n],
                "bm25_rel": bm_best.get(d, 0.0) / bm_top,
                "dense_rel": 0.0,
                "short": 1.0 if cjk_count(canon) < 4 else 0.0,
            }
            hits.append(Hit(self.docs[d], self.question_text(best_q), 0.0, feats, d))
        best_dense = max(h.features["dense"] for h in hits)
        knn = self._neighbour_vote(qvec, [sc for _, sc in dn[:KNN]])
        for h in hits:
            h.features["dense_rel"] = h.features["dense"] - best_dense
            h.features["knn"] = knn  # of the query, not the candidate: stage 1 has no weight for it
        return hits

    def _coverage(self, rows: np.ndarray, q_weights: dict[int, float], q_total: float
                  ) -> tuple[np.ndarray, np.ndarray]:
        """For each question row: the query's idf share found in it, and its own idf share found in the query.
        Over the rows' tokens at once (rows hold each token once); a Python loop over ~500 candidate questions
        was a fifth of a 100k-entry search."""
        cov = np.zeros(len(rows))
        qcov = np.zeros(len(rows))
        known = sorted(k for k in q_weights if k >= 0)  # a token unknown to the KB is in no row
        if not known or not len(rows):
            return cov, qcov
        starts, ends = self.q_ptr[rows], self.q_ptr[rows + 1]
        lengths = ends - starts
        owner = np.repeat(np.arange(len(rows)), lengths)
        tok = self.q_tok[np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
                         + np.repeat(starts, lengths)]
        qids = np.asarray(known, dtype=self.q_tok.dtype)
        at = np.minimum(np.searchsorted(qids, tok), len(qids) - 1)
        shared = qids[at] == tok
        weights = np.asarray([q_weights[k] for k in known])
        if q_total > 0:
            cov = np.bincount(owner, weights=np.where(shared, weights[at], 0.0), minlength=len(rows)) / q_total
        row_total = self.q_idf_total[rows]
        found = np.bincount(owner, weights=np.where(shared, self.idf[tok].astype(np.float64), 0.0),
                            minlength=len(rows))
        qcov = np.divide(found, row_total, out=np.zeros(len(rows)), where=row_total > 0)
        return cov, qcov

    def _neighbour_vote(self, qvec: np.ndarray | None, kb_nearest: list[float]) -> float:
        """The share of known near misses among the query's nearest neighbours in the dense space: the KB's
        questions and the labelled questions it answers on one side, the bank's and the labelled questions it
        does not answer on the other. A near miss lands among the near misses written for the same entry more
        often than a question the entry answers does; bigram closeness (`nm`) sees only near word-for-word
        repeats."""
        answered = kb_nearest + self.near_misses.nearest_answered(qvec, KNN).tolist()
        bank = self.near_misses.nearest(qvec, KNN).tolist()
        merged = sorted([(s, 0) for s in answered] + [(s, 1) for s in bank], reverse=True)[:KNN]
        return sum(b for _, b in merged) / KNN if merged else 0.0

    def search(self, query: str, fusion: Fusion, top_k: int = 5, today: date | None = None) -> SearchOutcome:
        query = self.without_incidentals(query)
        outcome = self._search(query, fusion, top_k, today)
        # 我在宝山区，居住证怎么办理: the district moved every similarity to the entry and the question was refused.
        # Read again without it, unless the entry itself is about a district (松江区民政局的办理时限); kept only if
        # the same entry comes first. Costs a second search only for refused questions naming a district.
        if outcome.decision == "no_answer" and outcome.hits and _DISTRICT is not None:
            bare = _DISTRICT.sub(" ", query).strip()
            top = outcome.hits[0].doc
            if bare and bare != query and not _DISTRICT.search(top.question + top.answer):
                again = self._search(bare, fusion, top_k, today)
                if again.decision != "no_answer" and again.hits[0].doc.entry_id == top.entry_id:
                    return again
        return outcome

    def ranked(self, query: str, fusion: Fusion, today: date | None = None) -> list[Hit]:
        """The candidates scored by the fusion's first stage, best first."""
        hits = self.candidates(query, today)
        for h, p in zip(hits, fusion.probabilities([h.features for h in hits]), strict=True):
            h.score = p
        hits.sort(key=lambda h: h.score, reverse=True)
        return hits

    def _search(self, query: str, fusion: Fusion, top_k: int, today: date | None) -> SearchOutcome:
        hits = self.ranked(query, fusion, today)
        probs = [h.score for h in hits]
        canon = self.processor.canonical(query[:MAX_QUERY_CHARS])
        near_miss, known = self.near_misses.match(canon)  # one pass over the bank serves the feature and the rule
        qfeats = self.query_features(query, hits, near_miss, fusion)
        decision = fusion.decide(probs, fusion.answerable(qfeats) if hits else 0.0, fusion.line(qfeats))
        if decision != "no_answer" and self.known_unanswerable(canon, hits[0], known):
            decision = "no_answer"
        elif decision == "clarify" and self.asks_its_own_question(canon, hits):
            decision = "answer"
        return SearchOutcome(decision, round(probs[0], 4) if probs else 0.0, hits[:top_k])

    def asks_its_own_question(self, canon: str, ranked: Sequence[Hit]) -> bool:
        """The query is, word for word, one of the top entry's own questions and of no other candidate's: the
        KB's editors wrote it for that entry, so it is answered outright however close a neighbour comes
        (低保怎么申请 next to the entries on 低保 renewal and 低保 for the disabled)."""
        text = canon.strip()
        if not ranked or not any(self.q_canon[qi] == text for qi in self.entry_questions[ranked[0].pos]):
            return False
        return not any(self.q_canon[qi] == text for h in ranked[1:] for qi in self.entry_questions[h.pos])

    def known_unanswerable(self, canon: str, top: Hit, known: float) -> bool:
        """The query (canonical text) holds a question already known to have no answer (a 查无 item still open, a
        seed near miss) to the share `known` (NearMissBank.match), more fully than any question of the entry it
        would be answered with. The answerability model alone weighs this as one feature among many and let some
        through: a citizen who said 都不是 was then given the same wrong answer on asking again."""
        if known < KNOWN_SHARE:
            return False
        own = [self.q_canon[qi] for qi in self.entry_questions[top.pos]]
        return self.near_misses.entry_share(canon, own) < known

    def query_features(self, query: str, ranked: Sequence[Hit], near_miss: float | None = None,
                       fusion: Fusion | None = None) -> dict[str, float]:
        """Query-level evidence that the best candidate really covers what is asked. `near_miss` is the bank's
        closeness when the caller has it already; `fusion` scores the words the entry leaves out (`facet`)."""
        feats, uncovered = self.query_evidence(query, ranked, near_miss)
        feats["facet"] = fusion.facet(uncovered) if fusion is not None and ranked else 0.0
        return feats

    def _known_parts(self, word: str) -> list[str]:
        """A word the KB does not know split into two it does (jieba keeps 违章罚款 whole; the KB says 违章 and
        罚款): counted whole, such a compound looked like a topic the entry never mentions."""
        if word in self.word_vocab or len(word) < 4:
            return [word]
        for i in range(2, len(word) - 1):
            if word[:i] in self.word_vocab and word[i:] in self.word_vocab:
                return [word[:i], word[i:]]
        return [word]

    def query_evidence(self, query: str, ranked: Sequence[Hit], near_miss: float | None = None
                       ) -> tuple[dict[str, float], list[str]]:
        """`query_features` but the facet score, and the query's words that the best entry's text leaves out."""
        if not ranked:
            return dict.fromkeys(QUERY_FEATURES, 0.0), []
        query = self.without_incidentals(query)
        top = ranked[0]
        # An incidental word unknown to the KB would count as the rarest word the entry leaves uncovered.
        words = [part for w in self.processor.words(query[:MAX_QUERY_CHARS])
                 if (len(w) >= 2 or cjk_count(w) == 0) and not (_incidental(w) and w not in self.word_vocab)
                 for part in self._known_parts(w)]
        # All of the entry's text: a query word absent from it is a topic the entry does not talk about,
        # the sign of a near-miss question the KB cannot answer. Built for the top hit only.
        text = " ".join([*(self.q_canon[qi] for qi in self.entry_questions[top.pos]),
                         self.processor.canonical(top.doc.answer)])
        idf = [(w, self._weight(self.vocab.get(w, -1))) for w in words]
        total = sum(i for _, i in idf) or 1.0
        missing = [(w, i) for w, i in idf if w not in text]
        uncovered = [i for _, i in missing]
        if near_miss is None:
            near_miss = self.near_misses.closeness(self.processor.canonical(query[:MAX_QUERY_CHARS]))
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
            "nm": near_miss,
            "nm_gap": near_miss - top.features.get("tset", 0.0),
            "knn": top.features.get("knn", 0.0),
        }, [w for w, _ in missing]

    def stats(self) -> dict[str, object]:
        return {
            "entries": len(self.docs),
            "questions": len(self.q_doc),
            "kb_version": self.kb_version,
            "encoder": getattr(self.encoder, "name", None),
            "build_seconds": round(self.build_seconds, 3),
            "build_phases": self.timings,
            "build_rss_mb": self.memory_mb,
        }
