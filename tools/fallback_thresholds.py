"""Choose the FallbackClassifier threshold on the held-out NLU file instead of guessing it.

Reads `rasa test nlu --successes` output (DIET's own confidence for each held-out example) and, for each
threshold, how many right predictions would be kept and how many wrong ones would still be acted on.
The rule: the lowest threshold at which at most 2 % of the predictions acted on are wrong — a wrong intent
costs more (a complaint treated as a policy question) than a "没能理解，换个说法" costs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("results", type=Path)
    p.add_argument("--max-wrong", type=float, default=0.02)
    args = p.parse_args()
    rows = []
    for name, ok in (("intent_successes.json", True), ("intent_errors.json", False)):
        path = args.results / name
        if path.exists():
            rows += [(r["intent_prediction"]["confidence"], ok) for r in json.loads(path.read_text())]
    chosen = None
    for t in [x / 100 for x in range(0, 96, 5)]:
        kept = [ok for conf, ok in rows if conf >= t]
        wrong = kept.count(False) / len(kept) if kept else 0.0
        print(json.dumps({"threshold": t, "acted_on": len(kept), "right_kept": kept.count(True),
                          "wrong_acted_on": kept.count(False), "wrong_share": round(wrong, 4),
                          "right_sent_to_fallback": sum(1 for c, ok in rows if ok and c < t)}))
        if chosen is None and wrong <= args.max_wrong:
            chosen = t
    print(json.dumps({"chosen_threshold": chosen, "examples": len(rows), "max_wrong_share": args.max_wrong}))


if __name__ == "__main__":
    main()
