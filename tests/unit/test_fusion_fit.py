"""The committed fusion (kb/data/fusion.json) is what the fit makes of the committed data: nobody tunes it by hand,
and a change to the data or the fit that moves it shows up here until `hotline kb tune` is run again."""

from __future__ import annotations

from pathlib import Path

import pytest

from kb.evaluation import demo_index, fit_fusion, load_queries, split
from kb.search import Fusion


def test_the_committed_fusion_is_the_fit_of_the_committed_data(shared_data_dir: Path):
    index = demo_index(shared_data_dir / "encoder")
    fitted = fit_fusion(index, split(load_queries())[0])
    committed = Fusion.load()
    assert fitted.weights == pytest.approx(committed.weights, abs=2e-3)
    assert fitted.answerable_weights == pytest.approx(committed.answerable_weights, abs=2e-3)
    assert fitted.answerable_threshold == pytest.approx(committed.answerable_threshold, abs=2e-3)
    assert (fitted.answer_threshold, fitted.margin) == pytest.approx((committed.answer_threshold, committed.margin))
