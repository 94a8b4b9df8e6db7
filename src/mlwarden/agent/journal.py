"""The action journal as the agent writes and shows it. The journal itself
(``store.journal.ActionJournal``) is written before an action touches anything, so a crash
never loses one. Every change of the deployment an action makes carries the marker
``[action N]`` in its reason, which is how a restarted agent tells an action that already took
effect from one that did not, and why no action ever runs twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlwarden.domain import ActionState


def marker(action_id: int) -> str:
    """The tag every deployment change of action ``action_id`` carries in its reason."""
    return f"[action {action_id}]"


# what a long action is doing, by the step its executor last recorded (``ActionJournal.progress``)
_STEPS = {
    "training": "training a candidate on {train_rows} labelled records",
    "validating": "scoring candidate and champion on {holdout_rows} held-out recent records",
    "registered": "candidate version {candidate_version} registered; staging it",
}


def progress_of(action: Mapping[str, Any]) -> str:
    """Where an action stands, in a sentence for the incident page and the CLI.

    >>> progress_of({"state": "pending", "approval_id": 3, "kind": "retrain", "result": {}})
    'approved (approval 3); the agent runs it on its next pass'
    >>> progress_of({"state": "running", "kind": "retrain",
    ...              "result": {"step": "training", "train_rows": 3500}})
    'running: training a candidate on 3500 labelled records'
    >>> progress_of({"state": "done", "kind": "retrain", "result": {"watching": "canary",
    ...              "candidate_version": 7, "promoted": None}})
    'candidate version 7 serves as canary; promoted only once its own records hold up'
    """
    state, result = ActionState(action["state"]), action.get("result") or {}
    if state is ActionState.PENDING:
        if action.get("approval_id") is not None:
            return (
                f"approved (approval {action['approval_id']}); the agent runs it on its next pass"
            )
        return "queued; the agent runs it on its next pass"
    if state is ActionState.RUNNING:
        step = result.get("step")
        template = _STEPS.get(step or "")
        try:
            text = template.format(**result) if template else (step or "started")
        except KeyError:
            text = step or "started"
        return f"running: {text}"
    if state is ActionState.FAILED:
        return f"failed: {action.get('error') or 'see the error'}"
    if state is ActionState.UNDONE:
        return "undone"
    if result.get("outcome"):
        return str(result["outcome"])
    if result.get("watching") and result.get("promoted") is None:
        return (
            f"candidate version {result.get('candidate_version')} serves as "
            f"{result['watching']}; promoted only once its own records hold up"
        )
    return "done"


__all__ = ["marker", "progress_of"]
