"""The search engine's vectorised parts against the plain definitions they replace."""

import numpy as np
import pytest

from kb.search import TextColumn, top_positions


def _reference(scores: np.ndarray, k: int) -> list[float]:
    """The k highest positive scores, as a sorted multiset (which of equal scores is taken is arbitrary)."""
    return sorted(s for s in scores.tolist() if s > 0)[::-1][:k]


@pytest.mark.parametrize("n", [0, 1, 7, 5_000, 200_003])
@pytest.mark.parametrize("density", [0.0, 0.001, 0.3, 1.0])
def test_top_positions_selects_the_highest_positive_scores(n: int, density: float) -> None:
    rng = np.random.default_rng(n + int(density * 1000))
    scores = np.zeros(n, dtype=np.float32)
    hit = rng.random(n) < density
    scores[hit] = rng.integers(1, 50, hit.sum()).astype(np.float32)  # many ties, as in a templated KB
    for k in (1, 10, 40):
        got = top_positions(scores, k)
        assert len(set(got.tolist())) == len(got)
        assert sorted(scores[got].tolist())[::-1] == _reference(scores, k)


def test_top_positions_when_the_best_scores_share_one_block() -> None:
    scores = np.zeros(100_000, dtype=np.float32)
    scores[5:45] = np.arange(40, 0, -1)  # all 40 in the first block: the floor must not drop any
    scores[50_000] = 0.5
    assert sorted(top_positions(scores, 40).tolist()) == list(range(5, 45))
    assert 50_000 in top_positions(scores, 41).tolist()


def test_text_column_take_matches_indexing() -> None:
    texts = ["低保怎么申请", "", "a", "公积金提取", "居住证"]
    col = TextColumn(texts, [len(t) for t in texts])
    assert col.take([4, 0, 1, 3, 3]) == [texts[4], texts[0], texts[1], texts[3], texts[3]]
    assert col.take([]) == []
    assert [col[i] for i in range(len(col))] == texts


def test_id_rows_hold_rows_compactly_and_give_them_back() -> None:
    from kb.search import IdRows, _NonEmptyRows

    rows = [[3, 1, 2], [], [7], [0, 5]]
    built = IdRows()
    built.extend(rows)
    assert len(built) == 4 and list(built) == rows and built[3] == [0, 5]
    ptr, tok = built.csr()
    assert ptr.tolist() == [0, 3, 3, 4, 6] and tok.tolist() == [3, 1, 2, 7, 0, 5]
    assert list(_NonEmptyRows(built, 99)) == [[3, 1, 2], [99], [7], [0, 5]]
