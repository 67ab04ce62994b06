"""The committed fusion (kb/data/fusion.json) is what the fit makes of the committed data: nobody tunes it by hand,
and a change to the data or the fit that moves it shows up here until `hotline kb tune` is run again."""

from __future__ import annotations

from pathlib import Path

import pytest

from kb.evaluation import demo_index, fit_fusion, load_queries, split
from kb.search import Fusion


def test_the_committed_fusion_is_the_fit_of_the_committed_data(shared_data_dir: Path):
    index = demo_index(shared_data_dir / "encoder")
    fitted = fit_fusion(index, split(load_queries())[0], shared_data_dir / "encoder")
    committed = Fusion.load()
    assert fitted.weights == pytest.approx(committed.weights, abs=2e-3)
    assert fitted.answerable_weights == pytest.approx(committed.answerable_weights, abs=2e-3)
    assert fitted.answerable_threshold == pytest.approx(committed.answerable_threshold, abs=2e-3)
    assert fitted.answerable_threshold_short == pytest.approx(committed.answerable_threshold_short, abs=2e-3)
    assert fitted.clarify_threshold == committed.clarify_threshold
    assert (fitted.answer_threshold, fitted.margin, fitted.answer_bar) == pytest.approx(
        (committed.answer_threshold, committed.margin, committed.answer_bar))


def test_the_vote_examples_are_the_questions_the_fit_learns_from():
    """kb/data/vote_examples.jsonl is written by the fit from tests/data; none of it is held out or a test set's."""
    from kb.evaluation import NOVEL_DIR, SHORT_DIR, TEST_DIR, UNANSWERABLE_DIR, stage2_training, vote_rows
    from kb.service import load_vote_file

    tune, held = split(load_queries())
    committed = load_vote_file()
    assert committed == vote_rows(stage2_training(tune))
    reported = {q.query for d in (TEST_DIR, SHORT_DIR, UNANSWERABLE_DIR, NOVEL_DIR) for q in load_queries(d)}
    reported |= {q.query for q in held}
    assert not reported & {r["query"] for r in committed}


def test_an_outright_answer_needs_the_answer_bar_as_well():
    """Sure of the entry but not that the KB answers at all: the candidates, not a possibly wrong answer."""
    fusion = Fusion({}, 0.0, answer_threshold=0.9, clarify_threshold=0.0, margin=0.2, answerable_weights={"p1": 1.0},
                    answerable_threshold=0.3, answer_bar=0.75)
    assert fusion.decide([0.99, 0.1], answerable=0.8) == "answer"
    assert fusion.decide([0.99, 0.1], answerable=0.6) == "clarify"
    assert fusion.decide([0.99, 0.1], answerable=0.2) == "no_answer"
    assert fusion.decide([0.99, 0.9], answerable=0.9) == "clarify"  # two entries alike: the margin decides
    assert fusion.decide([], answerable=0.9) == "no_answer"


def test_a_short_question_has_its_own_no_answer_line():
    """Three content words or fewer: the short line (docs/search.md, "Two lines"); a fusion file written before
    there were two lines has one for all."""
    fusion = Fusion({}, 0.0, answer_threshold=0.9, clarify_threshold=0.01, margin=0.2, answerable_weights={"p1": 1.0},
                    answerable_threshold=0.3, answerable_threshold_short=0.1, answer_bar=0.75)
    short, longer = {"words": 3 / 12}, {"words": 4 / 12}
    assert fusion.line(short) == 0.1 and fusion.line(longer) == 0.3
    assert fusion.decide([0.99, 0.1], 0.2, fusion.line(short)) == "clarify"
    assert fusion.decide([0.99, 0.1], 0.2, fusion.line(longer)) == "no_answer"
    assert fusion.decide([0.005], 0.9, fusion.line(short)) == "no_answer"  # below the candidate floor
    old = Fusion({}, 0.0, 0.9, 0.0, 0.2, answerable_threshold=0.3)
    assert old.line(short) == old.line(longer) == 0.3
    fitted = Fusion.load()
    assert fitted.answerable_threshold_short is not None and fitted.answerable_threshold_short < fitted.answerable_threshold


def test_the_answer_bar_keeps_nine_in_ten_right_answers_on_the_tuning_half(shared_data_dir: Path):
    from kb.evaluation import ANSWER_KEEP, evaluate_hybrid

    index = demo_index(shared_data_dir / "encoder")
    tune = split(load_queries())[0]
    committed = Fusion.load()
    without = Fusion(**{**committed.__dict__, "answer_bar": 0.0})
    right = {f.answer_bar: round(m["answer_decisions"] * m["answer_precision"])
             for f in (committed, without) for m in [evaluate_hybrid(index, f, tune)]}
    assert committed.answer_bar > 0
    assert right[committed.answer_bar] >= ANSWER_KEEP * right[0.0], right
