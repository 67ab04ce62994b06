"""Print the intent figures of `rasa test nlu` as one JSON line and fail below a macro-F1 floor."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("results", type=Path)
    p.add_argument("--min-macro-f1", type=float, default=0.0)
    args = p.parse_args()
    report = json.loads((args.results / "intent_report.json").read_text())
    macro = report["macro avg"]["f1-score"]
    weakest = sorted(((k, v["f1-score"]) for k, v in report.items() if isinstance(v, dict) and "support" in v
                      and k not in ("macro avg", "weighted avg", "micro avg")), key=lambda kv: kv[1])[:4]
    print(json.dumps({"bench": "nlu_heldout", "intent_macro_f1": round(macro, 4),
                      "accuracy": round(report.get("accuracy", report.get("micro avg", {}).get("f1-score", 0)), 4),
                      "examples": report["macro avg"]["support"],
                      "weakest": {k: round(v, 3) for k, v in weakest}}, ensure_ascii=False))
    if macro < args.min_macro_f1:
        print(f"intent macro-F1 {macro:.3f} is below the floor {args.min_macro_f1}", file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
