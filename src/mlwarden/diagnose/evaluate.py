"""Score the text matcher on labelled sets, tabulate its calibration, fit its weights.

A set is a YAML file with ``labelled`` (a list of ``{id, text}``) and ``unrelated`` (texts that
must get no match); ``tests/diagnose/cases.yaml`` also has ``holdout``. ``score`` gives top-1
and top-3 accuracy, the share of unrelated texts with no match, and per labelled text the first
match's confidence (for the reliability table). ``fit`` searches the matcher's weights on a
training set only: the held-out set is for scoring, never for choosing.

``python -m mlwarden.diagnose.evaluate FILE.yaml`` prints the scores of one file as JSON.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from mlwarden.diagnose.loader import load_playbooks
from mlwarden.diagnose.matcher import WEIGHTS, Ranked, TextMatcher, Weights, matcher_for

# Confidence bins of the reliability table: [low, high)
BINS: tuple[tuple[float, float], ...] = (
    (0.0, 0.5),
    (0.5, 0.6),
    (0.6, 0.7),
    (0.7, 0.8),
    (0.8, 0.9),
    (0.9, 1.0001),
)


MIN_SCORES = (1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5)


def load_set(path: str | Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    return data


def score(
    cases: Sequence[dict[str, str]],
    unrelated: Sequence[str] = (),
    matcher: TextMatcher | None = None,
) -> dict[str, Any]:
    """Top-1/top-3 accuracy, unrelated no-match share, misses and per-case confidence."""
    matcher = matcher or matcher_for(load_playbooks())
    return _score(
        matcher, [(matcher.rank(c["text"]), c) for c in cases], [matcher.rank(t) for t in unrelated]
    )


def _score(
    matcher: TextMatcher,
    ranked: Sequence[tuple[list[Ranked], dict[str, str]]],
    unrelated: Sequence[list[Ranked]],
) -> dict[str, Any]:
    top1 = top3 = 0
    misses: list[dict[str, Any]] = []
    answers: list[tuple[float, bool]] = []  # (confidence of the first match, right?)
    for ranking, case in ranked:
        ids = [r.id for r in matcher.shown(ranking, 3)]
        right = ids[:1] == [case["id"]]
        top1 += right
        top3 += case["id"] in ids
        if ids:
            answers.append((matcher.confidences(ranking)[ids[0]], right))
        if not right:
            misses.append({"id": case["id"], "got": ids, "text": case["text"]})
    no_match = sum(not matcher.shown(ranking, 3) for ranking in unrelated)
    n = max(len(ranked), 1)
    # distance of the no-match threshold to the nearest text on the wrong side of it
    threshold = matcher.weights.min_score
    lowest_right = min((r[0].score for r, c in ranked if r and r[0].id == c["id"]), default=0.0)
    highest_unrelated = max((r[0].score for r in unrelated if r), default=0.0)
    return {
        "n": len(ranked),
        "top1": round(top1 / n, 4),
        "top3": round(top3 / n, 4),
        "unrelated": len(unrelated),
        "unrelated_no_match": no_match,
        "margin": round(min(lowest_right - threshold, threshold - highest_unrelated), 3),
        "misses": misses,
        "answers": answers,
    }


def reliability(answers: Sequence[tuple[float, bool]]) -> list[dict[str, Any]]:
    """Per confidence bin: how many first matches fell in it and how many were right."""
    rows = []
    for low, high in BINS:
        inside = [right for conf, right in answers if low <= conf < high]
        mean = [conf for conf, _ in answers if low <= conf < high]
        rows.append(
            {
                "bin": f"{low:.1f}-{min(high, 1.0):.1f}",
                "n": len(inside),
                "right": sum(inside),
                "accuracy": round(sum(inside) / len(inside), 3) if inside else None,
                "mean_confidence": round(sum(mean) / len(mean), 3) if mean else None,
            }
        )
    return rows


def _objective(result: dict[str, Any]) -> tuple[float, ...]:
    # texts answered right: labelled ones with the right first match plus unrelated ones with
    # no match, each counting once; then top-3; then the widest gap between the no-match
    # threshold and the texts on either side of it
    return (
        round(result["top1"] * result["n"]) + result["unrelated_no_match"],
        result["top3"],
        result["margin"],
    )


def fit(cases: Sequence[dict[str, str]], unrelated: Sequence[str]) -> tuple[Weights, list[str]]:
    """The weights with the best training score (grid search), then the temperature that
    minimises the log-loss of the right playbook; and a log of the search."""
    playbooks = load_playbooks()
    log: list[str] = []
    best: tuple[tuple[float, ...], Weights] | None = None
    for lexical, context, repeat in itertools.product(
        (0.2, 0.35, 0.5), (0.3, 0.6, 1.0), (0.0, 0.5)
    ):
        shape = dataclasses.replace(WEIGHTS, lexical=lexical, context=context, repeat=repeat)
        matcher = TextMatcher(playbooks, weights=shape)
        ranked = [(matcher.rank(c["text"]), c) for c in cases]
        unrelated_ranked = [matcher.rank(t) for t in unrelated]
        # the thresholds only decide what is shown: the rankings are reused
        for min_score, min_lex in itertools.product(MIN_SCORES, (6.0, 9.0)):
            weights = dataclasses.replace(shape, min_score=min_score, min_lexical_only=min_lex)
            matcher.weights = weights
            result = _score(matcher, ranked, unrelated_ranked)
            key = _objective(result)
            if best is None or key > best[0]:
                best = (key, weights)
                log.append(
                    f"{weights}: top1 {result['top1']} top3 {result['top3']} "
                    f"unrelated {result['unrelated_no_match']}/{result['unrelated']}"
                )
    assert best is not None
    chosen = best[1]
    matcher = TextMatcher(playbooks, weights=chosen)
    rankings = [(matcher.rank(c["text"]), c["id"]) for c in cases]
    losses = {}
    for step in range(3, 41):
        matcher.weights = dataclasses.replace(chosen, temperature=step / 10)
        nll = [
            -math.log(max(matcher.confidences(r)[pid], 1e-9))
            for r, pid in rankings
            if matcher.shown(r, 1)
        ]
        losses[step / 10] = sum(nll) / max(len(nll), 1)
    temperature = min(losses, key=lambda t: (losses[t], t))
    log.append(f"temperature {temperature}: mean log-loss {losses[temperature]:.4f}")
    return dataclasses.replace(chosen, temperature=temperature), log


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        raise SystemExit("usage: python -m mlwarden.diagnose.evaluate CASES.yaml")
    data = load_set(args[0])
    out = {}
    for group in ("labelled", "holdout"):
        if data.get(group):
            result = score(data[group], data.get("unrelated", []) if group == "labelled" else [])
            result.pop("answers")
            out[group] = result
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
