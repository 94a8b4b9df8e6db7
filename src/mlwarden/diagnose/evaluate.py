"""Score the incident assistant on a labelled set of descriptions.

``python -m mlwarden.diagnose.evaluate tests/diagnose/cases.yaml`` prints, per group of the
file (``labelled``, ``holdout``), top-1 and top-3 accuracy, and for ``unrelated`` how many
texts correctly got no match. The file maps a group to a list of ``{id, text}`` (or, for
``unrelated``, plain strings).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

from mlwarden.diagnose.assistant import diagnose_text


def accuracy(cases: list[dict[str, str]]) -> dict[str, Any]:
    """Top-1/top-3 accuracy and the misses (``[{id, got, text}]``) over labelled cases."""
    top1 = top3 = 0
    misses = []
    for case in cases:
        ids = [m.id for m in diagnose_text(case["text"]).matches]
        top1 += ids[:1] == [case["id"]]
        top3 += case["id"] in ids[:3]
        if ids[:1] != [case["id"]]:
            misses.append({"id": case["id"], "got": ids, "text": case["text"]})
    n = len(cases)
    return {"n": n, "top1": round(top1 / n, 4), "top3": round(top3 / n, 4), "misses": misses}


def evaluate(path: str | Path) -> dict[str, Any]:
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    out: dict[str, Any] = {}
    for group in ("labelled", "holdout"):
        if data.get(group):
            out[group] = accuracy(data[group])
    if data.get("unrelated"):
        texts = data["unrelated"]
        out["unrelated"] = {"n": len(texts),
                            "no_match": sum(not diagnose_text(t).matched for t in texts)}
    return out


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        raise SystemExit("usage: python -m mlwarden.diagnose.evaluate CASES.yaml")
    print(json.dumps(evaluate(args[0]), indent=2))


if __name__ == "__main__":
    main()
