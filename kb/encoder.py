"""Sentence encoders for the dense leg.

`KB_ENCODER` names a sentence-transformers model or a path (production: BAAI/bge-small-zh-v1.5). Nothing is
ever downloaded: when the named model is not on disk, the embedded default is a domain encoder trained from
the KB's own standard and similar questions: a sentence-transformers `StaticEmbedding` over the same tokens
the lexical legs use, initialised from an LSA of the KB text and tuned with MultipleNegativesRankingLoss.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from kb.text import Analysis, TextProcessor, analyzer

logger = logging.getLogger(__name__)

STATIC_DIM = 128
STATIC_PREFIX = "static-"
MAX_TRAIN_PAIRS = 40_000  # enough to shape the space; keeps a 100k-entry KB's retrain short
MAX_TRAIN_ENTRIES = 6_000
MARKER = "hotline_encoder.json"


class Encoder(Protocol):
    name: str
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length float32 rows, one per text."""
        ...


@dataclass
class TrainingEntry:
    question: str
    similar_questions: list[str]
    answer: str


def _torch_threads() -> None:
    import torch

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


class SentenceTransformerEncoder:
    """A pretrained model already on disk (path or local Hugging Face cache)."""

    def __init__(self, spec: str):
        from sentence_transformers import SentenceTransformer

        _torch_threads()
        self.model = SentenceTransformer(spec, device="cpu", local_files_only=True)
        self.name = spec
        self.dim = int(self.model.get_sentence_embedding_dimension() or 0)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(
            self.model.encode(list(texts), batch_size=64, normalize_embeddings=True, show_progress_bar=False),
            dtype=np.float32,
        )


class StaticDomainEncoder:
    """The trained StaticEmbedding served with numpy alone: a mean of token vectors, as the module computes
    it, without importing torch into the serving process (training runs elsewhere)."""

    def __init__(self, model_dir: Path, processor: TextProcessor):
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        self.weights = load_file(str(model_dir / "model.safetensors"))["embedding.weight"].astype(np.float32)
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        self._vocab: dict[str, int] = self.tokenizer.get_vocab()
        unk = self.tokenizer.token_to_id("[UNK]")
        self._unk = 0 if unk is None else unk
        self.processor = processor
        self.model_dir = model_dir
        meta = json.loads((model_dir / MARKER).read_text(encoding="utf-8"))
        self.name = f"{STATIC_PREFIX}{meta['fingerprint'][:12]} (domain StaticEmbedding, {meta['pairs']} pairs)"
        self.dim = int(meta["dim"])

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return self.encode_analyses([self.processor.analyze(t) for t in texts])

    def encode_static(self, pre: Sequence[str]) -> np.ndarray:
        """Texts already turned into `Analysis.static_string()`, through the trained tokenizer itself."""
        return self._mean([e.ids for e in self.tokenizer.encode_batch(list(pre), add_special_tokens=False)])

    def encode_analyses(self, analyses: Sequence[Analysis]) -> np.ndarray:
        """What `encode_static` gives for their static strings, without building and re-splitting the strings:
        the tokenizer is a word-level lookup after a whitespace split (at 100k entries: 18 s → a few)."""
        get, unk = self._vocab.get, self._unk
        return self._mean([[get(t, unk) for t in a.static_tokens()] or [get("[UNK]", unk)] for a in analyses])

    def _mean(self, ids: list[list[int]]) -> np.ndarray:
        """Mean of the token vectors per text, L2-normalised, as one sparse product (a gather of every token's
        vector first, as `np.add.reduceat` needs, moved gigabytes at 100k entries)."""
        from scipy.sparse import csr_matrix

        lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
        indptr = np.zeros(len(ids) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        flat = np.fromiter((t for i in ids for t in i), dtype=np.int64, count=int(indptr[-1]))
        counts = csr_matrix((np.ones(len(flat), dtype=np.float32), flat, indptr),
                            shape=(len(ids), self.weights.shape[0]))
        out = np.asarray(counts @ self.weights, dtype=np.float32)
        out /= np.maximum(lengths, 1)[:, None]
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)


def training_fingerprint(entries: Sequence[TrainingEntry], synonyms: dict[str, str]) -> str:
    h = hashlib.sha256()
    for e in entries:
        h.update(json.dumps([e.question, e.similar_questions], ensure_ascii=False).encode())
    h.update(json.dumps(sorted(synonyms.items()), ensure_ascii=False).encode())
    h.update(f"dim={STATIC_DIM};v=3".encode())
    return h.hexdigest()


def train_static_encoder(
    entries: Sequence[TrainingEntry], processor: TextProcessor, out_dir: Path, fingerprint: str, seed: int = 13
) -> Path:
    """Trains the domain encoder and saves it under out_dir; returns the model directory."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from sentence_transformers.sentence_transformer.modules import StaticEmbedding
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import WhitespaceSplit

    _torch_threads()
    started = time.perf_counter()
    rng = random.Random(seed)
    torch.manual_seed(seed)

    if len(entries) > MAX_TRAIN_ENTRIES:  # a sample shapes the space as well; keeps a 100k KB's retrain short
        entries = rng.sample(list(entries), MAX_TRAIN_ENTRIES)
    # Each answer sentence pulls its entry's questions towards the words the answer uses (渣土, 犬只…).
    sentences = [[t for t in re.split(r"[。；！？\n]", e.answer)[:4] if len(t) >= 8] for e in entries]
    texts = list(dict.fromkeys(t for e, sent in zip(entries, sentences, strict=True)
                               for t in (e.question, *e.similar_questions, *sent)))
    with analyzer(processor, len(texts)) as analyze:
        static = dict(zip(texts, (a.static_string() for a in analyze(texts)), strict=True))
    docs = [" ".join(static[t] for t in (e.question, *e.similar_questions, *sent))
            for e, sent in zip(entries, sentences, strict=True)]
    counts = Counter(tok for d in docs for tok in d.split())
    vocab = {"[UNK]": 0, "[PAD]": 1}
    for tok, _ in counts.most_common():
        vocab.setdefault(tok, len(vocab))
    tokenizer = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = WhitespaceSplit()
    tokenizer.enable_padding(pad_id=1, pad_token="[PAD]")

    # LSA start: tokens that share entries start close together, which is what carries over to unseen queries.
    dim = STATIC_DIM
    weights = np.random.default_rng(seed).normal(0, 0.01, (len(vocab), dim)).astype(np.float32)
    tfidf = TfidfVectorizer(vocabulary=vocab, tokenizer=str.split, lowercase=False, token_pattern=None)
    x = tfidf.fit_transform(docs)
    k = min(dim, max(2, min(x.shape) - 1))
    svd = TruncatedSVD(n_components=k, random_state=seed)
    svd.fit(x)
    comp = svd.components_.T * np.sqrt(svd.singular_values_)
    weights[:, :k] += comp.astype(np.float32)
    weights[1] = 0.0

    module = StaticEmbedding(tokenizer, embedding_weights=weights)
    model = SentenceTransformer(modules=[module], device="cpu")

    pairs: list[tuple[str, str]] = []
    for e, sent in zip(entries, sentences, strict=True):
        pre = [static[t] for t in (e.question, *e.similar_questions)]
        for i in range(1, len(pre)):
            pairs.append((pre[i], pre[0]))
            pairs.append((pre[i], pre[rng.randrange(len(pre))]))
        for t in sent:
            pairs.append((static[t], pre[rng.randrange(len(pre))]))
    rng.shuffle(pairs)
    pairs = pairs[:MAX_TRAIN_PAIRS]

    loss_fn = MultipleNegativesRankingLoss(model, scale=20.0)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    batch = 128
    epochs = 6 if len(pairs) < 5000 else 2
    model.train()
    for _ in range(epochs):
        rng.shuffle(pairs)
        for i in range(0, len(pairs), batch):
            chunk = pairs[i : i + batch]
            if len(chunk) < 2:
                continue
            anchors = model.preprocess([a for a, _ in chunk])
            positives = model.preprocess([p for _, p in chunk])
            loss = loss_fn([anchors, positives], torch.zeros(len(chunk)))
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()

    model_dir = out_dir / f"{STATIC_PREFIX}{fingerprint[:16]}"
    tmp = out_dir / f".tmp-{fingerprint[:16]}-{os.getpid()}"
    model.save(str(tmp))
    (tmp / MARKER).write_text(
        json.dumps(
            {"kind": "static", "fingerprint": fingerprint, "dim": dim, "pairs": len(pairs), "vocab": len(vocab),
             "entries": len(entries), "seconds": round(time.perf_counter() - started, 2)},
            ensure_ascii=False,
        ),
        encoding="utf-8",
    )
    if model_dir.exists():
        import shutil

        shutil.rmtree(tmp)  # another process trained the same data meanwhile; keep theirs
    else:
        tmp.rename(model_dir)
    logger.info("trained domain encoder on %d pairs in %.1fs", len(pairs), time.perf_counter() - started)
    return model_dir


def try_pretrained(spec: str | None) -> Encoder | None:
    """The model `KB_ENCODER` names, if it is on disk; never downloads."""
    if not spec or spec.startswith(STATIC_PREFIX) or spec in ("static", "domain"):
        return None
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        return SentenceTransformerEncoder(spec)
    except Exception as e:  # a missing model is an expected condition, not an error
        logger.warning("encoder %r not available offline (%s); using the domain encoder", spec, e.__class__.__name__)
        return None


def trained_encoder(
    entries: Sequence[TrainingEntry], synonyms: dict[str, str], processor: TextProcessor, encoder_dir: Path
) -> StaticDomainEncoder | None:
    """The domain encoder for exactly this KB if it was trained already, else None."""
    model_dir = encoder_dir / f"{STATIC_PREFIX}{training_fingerprint(entries, synonyms)[:16]}"
    return StaticDomainEncoder(model_dir, processor) if (model_dir / MARKER).exists() else None


def _train_in_child(entries: list[TrainingEntry], synonyms: dict[str, str], out_dir: Path, fingerprint: str) -> str:
    return str(train_static_encoder(entries, TextProcessor(synonyms), out_dir, fingerprint))


def domain_encoder(
    entries: Sequence[TrainingEntry], synonyms: dict[str, str], processor: TextProcessor, encoder_dir: Path,
    isolate: bool = False,
) -> StaticDomainEncoder:
    """Loads the domain encoder trained on exactly this KB, training it first if there is none yet.

    `isolate` trains in a fresh process, so the serving process never holds the training's peak memory."""
    encoder_dir.mkdir(parents=True, exist_ok=True)
    fp = training_fingerprint(entries, synonyms)
    model_dir = encoder_dir / f"{STATIC_PREFIX}{fp[:16]}"
    if not (model_dir / MARKER).exists():
        if isolate:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
                pool.submit(_train_in_child, list(entries), synonyms, encoder_dir, fp).result()
        else:
            train_static_encoder(entries, processor, encoder_dir, fp)
    return StaticDomainEncoder(model_dir, processor)
