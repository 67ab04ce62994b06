"""Chinese text processing shared by indexing and querying.

Both sides must go through exactly the same steps, otherwise BM25 and the dense leg see different tokens.
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import jieba
from opencc import OpenCC

DATA_DIR = Path(__file__).parent / "data"
GOV_TERMS_FILE = DATA_DIR / "jieba" / "gov_terms.txt"  # also the Rasa JiebaTokenizer dictionary dir

jieba.setLogLevel(logging.WARNING)

_cc = OpenCC("t2s")
_PUNCT = re.compile(
    r"[\s\u3000-\u303f\uff00-\uff0f\uff1a-\uff20\uff3b-\uff40\uff5b-\uff65!-/:-@\[-`{-~·…—“”‘’、。《》（）【】]+"
)
_CJK = re.compile(r"[\u4e00-\u9fff]")
_CJK_RUN = re.compile(r"[\u4e00-\u9fff]+")
_LATIN = re.compile(r"[a-z0-9]+")

# Function words that say nothing about *which* knowledge point is asked for. Kept short on purpose:
# words such as 申请/办理/材料 do discriminate between entries and stay in.
STOPWORDS = frozenset(
    """的 了 吗 呢 啊 呀 吧 嘛 哦 哈 么 是 在 有 和 与 及 或 也 都 就 还 又 把 被 给 让 对 从 向 到 于 以 为
    我 你 他 她 它 我们 你们 他们 咱 咱们 自己 这 那 这个 那个 这些 那些 这样 那样 一下 一个 个 请问 请 问
    问下 问一下 想 想问 想要 要 能 能不能 可以 可不可以 可否 会 应该 需要 该 怎么 怎么样 怎样 如何 咋 咋办 啥 什么
    哪 哪里 哪儿 哪些 多少 多久 几 是否 有没有 是不是 不 没 没有 吗 您好 你好 谢谢 麻烦 帮 帮忙 帮我 一下子
    知道 告诉 现在 已经 然后 但是 因为 所以 如果 的话 就是 还是 或者 然后 比较 非常 很 太 最 更 呃 嗯 诶 哎""".split()
)


_simplified_chars: dict[str, bool] = {}


def _is_simplified(ch: str) -> bool:
    known = _simplified_chars.get(ch)
    if known is None:
        known = _simplified_chars[ch] = _cc.convert(ch) == ch
    return known


def normalize(text: str) -> str:
    """NFKC (full width → half width), traditional → simplified, lower case, punctuation → single space."""
    text = unicodedata.normalize("NFKC", text or "")
    # OpenCC in pure Python is the slowest step; most text has no traditional character at all.
    if not all(_is_simplified(c) for c in set(text)):
        text = _cc.convert(text)
    return _PUNCT.sub(" ", text.lower()).strip()


def char_grams(canon: str) -> list[str]:
    """Character bigrams of CJK runs plus Latin/digit words, without jieba: how long answers are indexed."""
    out: list[str] = []
    for run in _CJK_RUN.findall(canon):
        if len(run) == 1:
            out.append("#" + run)
        out.extend("#" + run[i : i + 2] for i in range(len(run) - 1))
    out.extend(_LATIN.findall(canon))
    return out


def cjk_count(text: str) -> int:
    return len(_CJK.findall(text))


class Synonyms:
    """Rewrites every synonym to its canonical term, longest match first, so 低宝/低保 → 最低生活保障."""

    def __init__(self, pairs: Mapping[str, str] | Iterable[tuple[str, str]] = ()):
        items = dict(pairs.items() if isinstance(pairs, Mapping) else pairs)
        self.mapping = {
            normalize(t): normalize(c) for t, c in items.items() if normalize(t) and normalize(t) != normalize(c)
        }
        if self.mapping:
            alternatives = sorted(self.mapping, key=len, reverse=True)
            self._pattern: re.Pattern[str] | None = re.compile("|".join(map(re.escape, alternatives)))
        else:
            self._pattern = None

    def apply(self, text: str, cuts_a_word: Callable[[str, int, int], bool] | None = None) -> str:
        """`cuts_a_word(text, start, end)` says a match cuts across a word of the text; such a match is left alone."""
        if self._pattern is None:
            return text
        canonical = self.mapping
        # A term inside its own canonical form (公积金 in 住房公积金) must not be rewritten twice.
        out, pos, at = [], 0, 0
        while (m := self._pattern.search(text, at)) is not None:
            start, end = m.span()
            if cuts_a_word is not None and cuts_a_word(text, start, end):
                at = start + 1  # 国家医保: 家医 is no word here, but 医保 one character on is
                continue
            target = canonical[m.group(0)]
            window = text[max(0, start - len(target)) : start + len(target)]
            out.append(text[pos:start])
            out.append(m.group(0) if target in window else target)
            pos = at = end
        out.append(text[pos:])
        return "".join(out)


def load_synonyms_file(path: Path) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        parts = line.strip().split("\t")
        if i == 0 and parts[:2] == ["term", "canonical"] or len(parts) < 2 or not parts[0]:
            continue
        pairs[parts[0].strip()] = parts[1].strip()
    return pairs


@dataclass(frozen=True)
class Analysis:
    canon: str
    words: list[str]
    tokens: list[str]

    def static_tokens(self) -> list[str]:
        """Input of the domain StaticEmbedding: tokens plus single characters, so unseen words still land."""
        return self.tokens + [f"${c}" for c in self.canon if not c.isspace()]

    def static_string(self) -> str:
        """The same as one whitespace-separated string, what the encoder's tokenizer reads (and trains on)."""
        return " ".join(self.static_tokens()) or "[UNK]"


_jieba_lock = threading.Lock()


@lru_cache(maxsize=4)
def _jieba_tokenizer(dict_path: str, extra_words: tuple[str, ...]) -> jieba.Tokenizer:
    tok = jieba.Tokenizer()
    with _jieba_lock:
        tok.initialize()
        if dict_path and Path(dict_path).exists():
            tok.load_userdict(dict_path)
        for w in extra_words:
            tok.add_word(w, freq=2000)
    return tok


class TextProcessor:
    """Owns the jieba dictionary and the synonym table; turns raw text into search tokens."""

    def __init__(self, synonyms: Mapping[str, str] | None = None, dict_path: Path | None = GOV_TERMS_FILE):
        self.synonyms = Synonyms(synonyms or {})
        extra = tuple(sorted({w for pair in self.synonyms.mapping.items() for w in pair if len(w) >= 2}))
        self.dict_path = str(dict_path or "")
        self._tok = _jieba_tokenizer(self.dict_path, extra)

    def canonical(self, text: str) -> str:
        """Normalised text with synonyms rewritten; what rapidfuzz compares."""
        return self.synonyms.apply(normalize(text), self._cuts_a_word)

    def _cuts_a_word(self, text: str, start: int, end: int) -> bool:
        """The table rewrites strings, so a term can sit across two words: 家医 (家庭医生) in 哪家医院 and 国家医保,
        的哥 in 我的哥哥. Such a match cuts a word jieba reads there; a term inside one word (公积金贷款) does not."""
        # Only where a word of the dictionary spans an edge of the match is jieba asked (a sevenfold cost otherwise).
        freq = self._tok.FREQ
        left = start > 0 and freq.get(text[start - 1 : start + 1])
        right = end < len(text) and freq.get(text[end - 1 : end + 1])
        if not left and not right:
            return False
        lo = max(0, start - 4)
        for _, s, e in self._tok.tokenize(text[lo : end + 4]):
            s, e = s + lo, e + lo
            if (s < start < e or s < end < e) and not (s <= start and end <= e):
                return True
        return False

    def words(self, text: str) -> list[str]:
        """Content words: jieba tokens of the canonical text without stopwords and punctuation."""
        return self.analyze(text).words

    def tokens(self, text: str) -> list[str]:
        """Words plus character bigrams of CJK runs: bigrams survive typos and segmentation mismatches."""
        return self.analyze(text).tokens

    def analyze(self, text: str) -> Analysis:
        """Everything the index needs from one text, with a single jieba pass."""
        canon = self.canonical(text)
        return with_grams(canon, [w for w in self._tok.lcut(canon, HMM=True) if w.strip() and w not in STOPWORDS])


def with_grams(canon: str, words: list[str]) -> Analysis:
    grams: list[str] = []
    for w in words:
        if len(w) >= 2 and _CJK.match(w):
            grams.extend("#" + w[i : i + 2] for i in range(len(w) - 1))
    return Analysis(canon, words, words + grams)


_worker_processor: TextProcessor | None = None
PARALLEL_MIN_TEXTS = 20_000


def _init_worker(synonyms: dict[str, str], dict_path: str) -> None:
    global _worker_processor
    _worker_processor = TextProcessor(synonyms, Path(dict_path) if dict_path else None)


_SEP = "\x1f"


def _analyze_chunk(chunk: list[str]) -> list[str]:
    """Workers send back one string per text: pickling Analysis objects cost more than segmenting."""
    assert _worker_processor is not None
    return [_SEP.join([a.canon, *a.words]) for a in map(_worker_processor.analyze, chunk)]


def _canonical_chunk(chunk: list[str]) -> list[str]:
    assert _worker_processor is not None
    return [_worker_processor.canonical(t) for t in chunk]


class Analyzer:
    """Analyses lists of texts in this process. `submit` returns a function that gives the result when called,
    so a caller can hand the next chunk to the workers before it indexes the current one."""

    def __init__(self, processor: TextProcessor):
        self.processor = processor

    def __call__(self, texts: list[str]) -> list[Analysis]:
        return self.submit(texts)()

    def submit(self, texts: list[str]) -> Callable[[], list[Analysis]]:
        return lambda: [self.processor.analyze(t) for t in texts]

    def submit_canonical(self, texts: list[str]) -> Callable[[], list[str]]:
        return lambda: [self.processor.canonical(t) for t in texts]


class _PooledAnalyzer(Analyzer):
    def __init__(self, processor: TextProcessor, pool: Any, workers: int):
        super().__init__(processor)
        self.pool = pool
        self.workers = workers

    def _parts(self, texts: list[str]) -> list[list[str]]:
        size = max(500, len(texts) // (self.workers * 4))
        return [texts[i : i + size] for i in range(0, len(texts), size)]

    def submit(self, texts: list[str]) -> Callable[[], list[Analysis]]:
        handle = self.pool.map_async(_analyze_chunk, self._parts(texts))

        def result() -> list[Analysis]:
            out = []
            for part in handle.get():
                for packed in part:
                    canon, *words = packed.split(_SEP)
                    out.append(with_grams(canon, words))
            return out

        return result

    def submit_canonical(self, texts: list[str]) -> Callable[[], list[str]]:
        handle = self.pool.map_async(_canonical_chunk, self._parts(texts))
        return lambda: [c for part in handle.get() for c in part]


@contextmanager
def analyzer(processor: TextProcessor, total_texts: int) -> Iterator[Analyzer]:
    """An Analyzer. jieba is pure Python, so a large KB is segmented on every core by spawned workers (not
    forked: the server has threads, and fork would copy their held locks)."""
    import multiprocessing as mp
    import os

    # As many workers as cores even when the caller works alongside them: on 2 cores, one worker left jieba
    # the bottleneck (100k entries: 181 s to build against 167 s with two).
    workers = min(4, os.cpu_count() or 1)
    if total_texts < PARALLEL_MIN_TEXTS or workers < 2:
        yield Analyzer(processor)
        return
    pool = mp.get_context("spawn").Pool(workers, initializer=_init_worker,
                                        initargs=(processor.synonyms.mapping, processor.dict_path))
    try:
        yield _PooledAnalyzer(processor, pool, workers)
    finally:
        pool.close()  # close + join: terminate() can leave a worker holding the queue lock
        pool.join()
