"""The live search service of one process: builds the index from the published KB and keeps it current.

Every replica polls the KB version in the database and rebuilds when it moves, so a version published
through any replica is searchable everywhere within a couple of seconds, and a retired one disappears.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from kb import entries as kbe
from kb.encoder import (
    STATIC_PREFIX,
    Encoder,
    StaticDomainEncoder,
    TrainingEntry,
    domain_encoder,
    trained_encoder,
    try_pretrained,
)
from kb.models import Entry, EntryVersion, Gap, Synonym
from kb.search import Doc, Fusion, NearMissBank, SearchIndex, SearchOutcome, VoteExamples
from kb.text import TextProcessor

logger = logging.getLogger(__name__)


def load_docs(s: Session) -> list[Doc]:
    """Plain rows, not ORM objects: at 100k entries the identity map alone would cost hundreds of MB."""
    v = EntryVersion
    q = (select(v.entry_id, v.version, v.question, v.similar_questions, v.answer, v.policy_basis, v.unit,
                v.category, v.effective_from, v.effective_to)
         .join(Entry, (Entry.id == v.entry_id) & (Entry.published_version == v.version))
         .order_by(v.entry_id))
    # Streamed: fetching 100k rows at once left ~115 MB of freed-but-fragmented heap behind the docs. Policy
    # basis, unit and category repeat across entries, so each distinct one is kept once.
    shared: dict[str, str] = {}
    rows = s.execute(q.execution_options(yield_per=2000))
    return [Doc(r[0], r[1], r[2], tuple(r[3] or ()), r[4], shared.setdefault(r[5], r[5]),
                shared.setdefault(r[6], r[6]), shared.setdefault(r[7], r[7]), r[8], r[9]) for r in rows]


def load_synonyms(s: Session) -> dict[str, str]:
    return {r.term: r.canonical for r in s.scalars(select(Synonym))}


NEAR_MISS_FILE = Path(__file__).resolve().parent / "data" / "near_misses.jsonl"
MAX_OPEN_MISSING = 5000  # the newest open 查无 items in the bank (5,000 rows: ~0.2 ms a search)
MAX_DECLINED_MISSING = 5000  # and the newest the office rejected


def load_near_miss_file(path: Path = NEAR_MISS_FILE) -> list[tuple[str, str | None]]:
    """(question, the entry it is a near miss of, or None): questions written for the demo KB that it cannot answer."""
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [(r["query"], r.get("near")) for r in rows]


def seed_near_misses(rows: list[tuple[str, str | None]], published: set[str]) -> list[str]:
    """The seed rows that concern this KB: a near miss of a published entry; one near nothing, when the KB is the
    one the file was written for (any of its entries published)."""
    demo = any(near in published for _, near in rows if near)
    return [q for q, near in rows if (near in published if near else demo)]


# Labelled questions written for the demo KB that vote beside its own questions and the bank's (`knn`): every question
# the answerability model learns from, written here by the fit (`hotline kb tune`) from tests/data.
VOTE_FILE = Path(__file__).resolve().parent / "data" / "vote_examples.jsonl"


def load_vote_file(path: Path = VOTE_FILE) -> list[dict[str, str | None]]:
    """Rows {"query", "entry"} the demo KB answers, {"query", "entry": null, "near"} it does not."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def vote_examples(rows: list[dict[str, str | None]], published: set[str]) -> VoteExamples:
    """The rows that concern this KB: an answered question while its entry is published, an unanswered one as a seed
    near miss is (`seed_near_misses`)."""
    answered = tuple(str(r["query"]) for r in rows if r.get("entry") in published)
    unanswered = seed_near_misses([(str(r["query"]), r.get("near")) for r in rows if not r.get("entry")], published)
    return VoteExamples(tuple(unanswered), answered)


def open_missing_questions(s: Session) -> list[str]:
    """The newest open 查无 items' questions, less those repeating one the office resolved: an item opened in the
    second before the index caught up with a published answer must not keep the question refused for good."""
    q = (select(Gap.question).where(Gap.kind == "missing", Gap.status == "open", Gap.recurs_gap_id.is_(None))
         .order_by(Gap.last_seen_at.desc()).limit(MAX_OPEN_MISSING))
    return list(s.scalars(q))


def declined_missing_questions(s: Session) -> list[str]:
    """The questions of the newest 查无 items the office rejected: the KB will not answer them."""
    q = (select(Gap.question).where(Gap.kind == "missing", Gap.status == "rejected")
         .order_by(Gap.last_seen_at.desc()).limit(MAX_DECLINED_MISSING))
    return list(s.scalars(q))


def missing_signature(s: Session) -> tuple[int, int, int]:
    """Moves whenever a 查无 item opens, closes or is rejected: (how many are open, the newest open one's id, how
    many are rejected)."""
    n, newest = s.execute(select(func.count(Gap.id), func.max(Gap.id))
                          .where(Gap.kind == "missing", Gap.status == "open")).one()
    declined = s.scalar(select(func.count(Gap.id)).where(Gap.kind == "missing", Gap.status == "rejected"))
    return int(n or 0), int(newest or 0), int(declined or 0)


def training_entries(docs: Sequence[Doc], labelled: Mapping[str, Sequence[str]] | None = None) -> list[TrainingEntry]:
    """What the domain encoder learns from: each entry's own questions and answer, and `labelled`, questions written
    by other hands that the entry answers (the vote's answered examples, by entry id). The KB's editors write tidy
    questions; the labelled ones carry the words citizens use (买肉少了二两, 水压低得洗不了澡)."""
    labelled = labelled or {}
    return [TrainingEntry(d.question, [*d.similar_questions, *labelled.get(d.entry_id, ())], d.answer) for d in docs]


def answered_by_entry(rows: Sequence[Mapping[str, str | None]]) -> dict[str, list[str]]:
    """The answered rows of a vote file, as {entry id: questions}."""
    out: dict[str, list[str]] = {}
    for r in rows:
        if r.get("entry"):
            out.setdefault(str(r["entry"]), []).append(str(r["query"]))
    return out


class SearchService:
    def __init__(self, factory: sessionmaker[Session], data_dir: Path, encoder_spec: str | None = None,
                 fusion: Fusion | None = None, near_miss_file: Path | None = NEAR_MISS_FILE,
                 vote_file: Path | None = VOTE_FILE):
        self.factory = factory
        # The seed and the vote's examples are written for the demo KB: a deployment that starts without it passes None.
        self.near_miss_rows = load_near_miss_file(near_miss_file) if near_miss_file else []
        self.vote_rows = load_vote_file(vote_file) if vote_file else []
        self._missing_signature: tuple[int, int, int] | None = None
        self.encoder_dir = data_dir / "encoder"
        self.encoder_spec = encoder_spec
        self.fusion = fusion or Fusion.load()
        self.index: SearchIndex | None = None
        self._pretrained: Encoder | None = None
        self._pretrained_tried = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self.last_error: str | None = None
        self._training: threading.Thread | None = None

    # -- building ---------------------------------------------------------------------------------------

    def _encoder(self, docs: list[Doc], synonyms: dict[str, str], processor: TextProcessor) -> Encoder | None:
        """The encoder to build with now. A retrain that a KB change needs runs in the background while the
        current encoder keeps serving, so a publication is searchable within seconds, not a training later."""
        if not self._pretrained_tried:
            self._pretrained = try_pretrained(self.encoder_spec)
            self._pretrained_tried = True
        if self._pretrained is not None:
            return self._pretrained
        if not docs:
            return None
        entries = training_entries(docs, answered_by_entry(self.vote_rows))
        ready = trained_encoder(entries, synonyms, processor, self.encoder_dir)
        if ready is not None:
            return ready
        current = self.index.encoder if self.index is not None else None
        if isinstance(current, StaticDomainEncoder):
            self._train_in_background(entries, synonyms, processor)
            return current
        # First start: nothing to serve with yet, so train now (in a child process: the server never imports
        # torch nor holds the training's peak memory).
        enc = domain_encoder(entries, synonyms, processor, self.encoder_dir, isolate=True)
        self._prune_encoders()
        return enc

    def _train_in_background(self, entries: list[TrainingEntry], synonyms: dict[str, str],
                             processor: TextProcessor) -> None:
        if self.training:
            return  # when it ends, its rebuild notices a KB that moved meanwhile and trains again

        def work() -> None:
            try:
                domain_encoder(entries, synonyms, processor, self.encoder_dir, isolate=True)
                self._prune_encoders()
            except Exception as e:  # keep serving with the current encoder
                self.last_error = f"encoder training failed: {e.__class__.__name__}: {e}"
                logger.exception("encoder training failed")
                return
            self._training = None
            if self._stop.is_set():
                return
            try:
                self.rebuild()  # picks up the new encoder, or starts the next training if the KB moved again
            except Exception as e:
                self.last_error = f"{e.__class__.__name__}: {e}"
                logger.exception("index rebuild after training failed")

        self._training = threading.Thread(target=work, name="kb-encoder-training", daemon=True)
        self._training.start()

    def _prune_encoders(self, keep_last: int = 3) -> None:
        dirs = sorted((p for p in self.encoder_dir.glob(f"{STATIC_PREFIX}*") if p.is_dir()),
                      key=lambda p: p.stat().st_mtime, reverse=True)
        for old in dirs[keep_last:]:
            shutil.rmtree(old, ignore_errors=True)

    def rebuild(self) -> SearchIndex:
        """Reads the published KB and swaps in a new index; searches keep using the old one meanwhile."""
        with self._lock:
            with self.factory() as s:
                version = kbe.kb_version(s)
                docs = load_docs(s)
                synonyms = load_synonyms(s)
                signature, (near_misses, rejected) = missing_signature(s), self._near_miss_texts(s, docs)
            processor = TextProcessor(synonyms)
            encoder = self._encoder(docs, synonyms, processor)
            self.index = SearchIndex(docs, processor, encoder, version, near_misses=near_misses,
                                     rule_only_near_misses=rejected,
                                     vote_examples=vote_examples(self.vote_rows, {d.entry_id for d in docs}),
                                     previous_bank=self.index.near_misses if self.index is not None else None)
            self._missing_signature = signature
            self.last_error = None
            logger.info("search index built: %s", self.index.stats())
            return self.index

    @property
    def training(self) -> bool:
        return self._training is not None and self._training.is_alive()

    def current_kb_version(self) -> int:
        with self.factory() as s:
            return kbe.kb_version(s)

    def refresh_if_changed(self) -> bool:
        if self.index is not None and self.current_kb_version() == self.index.kb_version:
            self.refresh_near_misses()
            return False
        self.rebuild()
        return True

    def refresh_near_misses(self) -> bool:
        """A 查无 item opened or closed: the index keeps its entries and only its bank of near misses changes."""
        index = self.index
        if index is None:
            return False
        with self.factory() as s:
            signature = missing_signature(s)
            if signature == self._missing_signature:
                return False
            near_misses, rejected = self._near_miss_texts(s, index.docs)
        index.near_misses = NearMissBank(near_misses, index.processor, index.encoder, previous=index.near_misses,
                                         rule_only=rejected, examples=index.near_misses.examples)
        self._missing_signature = signature
        return True

    def _near_miss_texts(self, s: Session, docs: list[Doc]) -> tuple[list[str], list[str]]:
        """The bank's texts: the seed rows that concern these entries and the open 查无 items (evidence and rule), and
        the 查无 items the office rejected (the rule only: refused when asked again)."""
        return ([*seed_near_misses(self.near_miss_rows, {d.entry_id for d in docs}), *open_missing_questions(s)],
                declined_missing_questions(s))

    def start_watcher(self, interval: float = 1.0) -> None:
        def loop() -> None:
            while not self._stop.wait(interval):
                try:
                    self.refresh_if_changed()
                except Exception as e:  # keep serving the last good index; /health reports the error
                    self.last_error = f"{e.__class__.__name__}: {e}"
                    logger.exception("index refresh failed")

        self._watcher = threading.Thread(target=loop, name="kb-index-watcher", daemon=True)
        self._watcher.start()

    def stop(self) -> None:
        self._stop.set()

    # -- querying ---------------------------------------------------------------------------------------

    def ready_index(self) -> SearchIndex:
        if self.index is None:
            self.rebuild()
        assert self.index is not None
        return self.index

    def search(self, query: str, top_k: int = 5, today: date | None = None) -> SearchOutcome:
        return self.ready_index().search(query, self.fusion, top_k=top_k, today=today)

    def affected_entries(self, title: str, text: str, unit: str, today: date, limit: int = 10
                         ) -> list[tuple[str, str, float]]:
        """Entries a new policy most likely touches: the policy's title and opening searched as a question,
        the policy's own unit's entries first among near ties."""
        index = self.ready_index()
        hits = index.candidates(f"{title} {text[:200]}", today, pool=60)
        scored = []
        for h in hits:
            p = self.fusion.probability(h.features)
            relevance = 0.5 * p + 0.3 * h.features["ans"] + 0.2 * h.features["cov"]
            relevance += 0.1 if h.doc.unit == unit else 0.0
            scored.append((h.doc.entry_id, h.doc.unit, relevance))
        scored.sort(key=lambda t: t[2], reverse=True)
        return [t for t in scored[:limit] if t[2] >= 0.15]

    def health(self, today: date) -> dict[str, object]:
        idx = self.index
        return {
            "kb_version": idx.kb_version if idx else None,
            "entries": sum(1 for d in idx.docs if d.in_effect(today)) if idx else 0,
            "encoder": getattr(idx.encoder, "name", None) if idx else None,
            "index_built_in_seconds": round(idx.build_seconds, 3) if idx else None,
            "near_misses": len(idx.near_misses) if idx else 0,
            "vote_examples": (len(idx.near_misses.examples.answered) + len(idx.near_misses.examples.unanswered)
                              if idx else 0),
            "encoder_training": self.training,
            "fusion": self.fusion.source,
            "last_error": self.last_error,
        }


def wait_for_version(service: SearchService, version: int, timeout: float = 30.0) -> bool:
    """For tests and the CLI: block until the index has caught up with `version`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.index is not None and service.index.kb_version >= version:
            return True
        time.sleep(0.1)
    return False
