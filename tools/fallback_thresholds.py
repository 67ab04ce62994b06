"""Choose the FallbackClassifier threshold on the held-out NLU file instead of guessing it.

Reads `rasa test nlu --successes` output (DIET's own confidence for each held-out example) and, for each
threshold, how many right predictions would be kept and how many wrong ones would still be acted on.
The rule: the threshold with the lowest cost, where acting on a wrong intent (a complaint treated as a policy
question) costs twice as much as sending a right one to "没能理解，换个说法" (the citizen rephrases).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("results", type=Path)
    p.add_argument("--wrong-cost", type=float, default=2.0, help="cost of acting on a wrong intent vs a fallback")
    args = p.parse_args()
    rows = []
    for name, ok in (("intent_successes.json", True), ("intent_errors.json", False)):
        path = args.results / name
        if path.exists():
            rows += [(r["intent_prediction"]["confidence"], ok) for r in json.loads(path.read_text())]
    best: tuple[float, float] | None = None
    for t in [x / 100 for x in range(0, 96, 5)]:
        kept = [ok for conf, ok in rows if conf >= t]
        wrong = kept.count(False) / len(kept) if kept else 0.0
        print(json.dumps({"threshold": t, "acted_on": len(kept), "right_kept": kept.count(True),
                          "wrong_acted_on": kept.count(False), "wrong_share": round(wrong, 4),
                          "right_sent_to_fallback": (lost := sum(1 for c, ok in rows if ok and c < t))}))
        cost = args.wrong_cost * kept.count(False) + lost
        if best is None or cost < best[1]:
            best = (t, cost)
    print(json.dumps({"chosen_threshold": best[0] if best else None, "cost": best[1] if best else None,
                      "examples": len(rows), "wrong_cost": args.wrong_cost}))


if __name__ == "__main__":
    main()
