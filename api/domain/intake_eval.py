"""Intake quality on the held-out quarter of the labelled set (bench figures; floors asserted in tests)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from api.domain.intake import CATEGORIES, IntakeClassifier, Labelled, is_heldout, load_labelled, load_units

# Written blind (tests/data/intake_fresh.jsonl): never used for rules, features or training.
BLIND_FILE = Path(__file__).resolve().parents[2] / "tests" / "data" / "intake_fresh.jsonl"
# Written blind to test the safety nets alone: emergencies now (many calm), look-alikes, threats, strong feelings.
SAFETY_FILE = BLIND_FILE.with_name("intake_safety_blind.jsonl")
# Each safety set was blind for its first run only: the rules were then extended from its misses, and the next
# set, written by someone else who had seen none of it, measures what that generalised to.
SAFETY_FILES = [SAFETY_FILE, *(BLIND_FILE.with_name(f"intake_safety_blind{n}.jsonl") for n in (2, 3, 4, 5))]


def evaluate(clf: IntakeClassifier | None = None) -> dict[str, Any]:
    examples = load_labelled()
    train = [m for m in examples if not is_heldout(m)]
    held = [m for m in examples if is_heldout(m)]
    return _scores(clf or IntakeClassifier(train, load_units()), train, held)


@lru_cache(maxsize=1)
def full_classifier() -> IntakeClassifier:
    """Trained on all of the labelled set, for the blind sets; built once for both (~30 s)."""
    return IntakeClassifier(load_labelled(), load_units())


def evaluate_blind(path: Path = BLIND_FILE) -> dict[str, Any]:
    """A test set written by someone who saw neither the labelled set nor the rules: the model learns from all of
    the labelled set, and the figures say how the intake does on messages nobody tuned for."""
    return _scores(full_classifier(), load_labelled(), load_labelled(path))


def evaluate_safety(path: Path = SAFETY_FILE, clf: IntakeClassifier | None = None) -> dict[str, Any]:
    """Emergencies: turned away with the numbers (rules), or shown the numbers while the order goes on
    (a safety model's suspicion); threats: flagged at all, and by explicit wording."""
    clf = clf or full_classifier()
    out = [(m, clf.classify(m.text)) for m in load_labelled(path)]
    em = [r for m, r in out if m.label == "emergency"]
    calm = [r for m, r in out if m.label != "emergency"]
    th = [r for m, r in out if m.threat]
    no_th = [r for m, r in out if not m.threat]
    return {
        "messages": len(out), "emergencies": len(em), "threats": len(th),
        "emergency_excluded": _share(em, "exclusion", "emergency"),
        "emergency_numbers_shown": _share(em, "possible_emergency"),
        "non_emergency_excluded": _share(calm, "exclusion", "emergency"),
        "non_emergency_numbers_shown": _share(calm, "possible_emergency"),
        "threat_recall": _share(th, "threat"), "threat_wording_recall": _share(th, "threat_wording"),
        "non_threat_flagged": _share(no_th, "threat"),
    }


def _share(rows: list[dict[str, Any]], key: str, value: Any = True) -> float:
    """The share of classify() results whose `key` equals `value`."""
    return round(sum(1 for r in rows if r.get(key) == value) / max(1, len(rows)), 4)


def _scores(clf: IntakeClassifier, train: list[Labelled], held: list[Labelled]) -> dict[str, Any]:
    from sklearn.metrics import f1_score

    out = [(m, clf.classify(m.text)) for m in held]
    accept_ok = sum(1 for m, r in out if r["accepted"] == (m.label in CATEGORIES))
    emergencies = [(m, r) for m, r in out if m.label == "emergency"]
    caught = sum(1 for _, r in emergencies if r["exclusion"] == "emergency")
    cat = [(m.label, r["category"] or "") for m, r in out if m.label in CATEGORIES]
    routed = [(m, r) for m, r in out if m.unit and r["accepted"]]
    top3 = sum(1 for m, r in routed if m.unit in [u["unit"] for u in r["suggested_units"][:3]])
    top1 = sum(1 for m, r in routed if r["suggested_units"] and r["suggested_units"][0]["unit"] == m.unit)
    threats = [(m, r) for m, r in out if m.threat]
    return {
        "train": len(train), "heldout": len(held),
        "accept_exclude_accuracy": round(accept_ok / max(1, len(out)), 4),
        "emergencies": len(emergencies), "emergency_recall": round(caught / max(1, len(emergencies)), 4),
        "category_macro_f1": round(float(f1_score([a for a, _ in cat], [b for _, b in cat], labels=list(CATEGORIES),
                                                  average="macro", zero_division=0)), 4),
        "exclusion_accuracy": round(sum(1 for m, r in out if m.label not in CATEGORIES
                                        and r["exclusion"] == m.label) / max(1, sum(1 for m, _ in out
                                                                                     if m.label not in CATEGORIES)), 4),
        "routing_top1": round(top1 / max(1, len(routed)), 4), "routing_top3": round(top3 / max(1, len(routed)), 4),
        "routed": len(routed),
        "threat_recall": _share([r for _, r in threats], "threat"),
        # what the recall-first safety models cost on ordinary messages
        "non_threat_flagged": _share([r for m, r in out if not m.threat], "threat"),
        "non_emergency_numbers_shown": _share([r for m, r in out if m.label != "emergency"], "possible_emergency"),
    }
