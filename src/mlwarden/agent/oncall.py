"""What on-call people do with an incident: acknowledge it, assign it, annotate it, accept its
drift as the new normal (and undo that).

Each is an entry on the incident's timeline (with who did it) and an entry in the audit log.
None of them but acceptance changes what the agent does: it still acts on the incident per its
policy. An accepted incident is no longer worked on and absorbs only its own drift
(``agent.acceptance``); reopening it hands it back to the agent. The
incident's on-call state (acknowledged by whom and when, its assignee, its notes) is read back
from the timeline, the one record of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlwarden.agent.acceptance import accept_incident, reopen_incident
from mlwarden.errors import Conflict, InvalidInput
from mlwarden.store.incidents import CLOSED_STATES, AgentRepo
from mlwarden.store.repository import Store

MAX_NOTE_CHARS = 4000
MAX_ASSIGNEE_CHARS = 100

ACKNOWLEDGED = "acknowledged"
ASSIGNED = "assigned"
NOTE = "note"


def acknowledge(store: Store, incident_id: int, *, actor: str) -> dict[str, Any]:
    """``actor`` takes the incident on. A closed incident, or one already acknowledged, is a
    :class:`Conflict`: there is nothing left to acknowledge."""
    repo = AgentRepo(store)
    incident = repo.get_incident(incident_id)
    if incident["state"] in CLOSED_STATES:
        raise Conflict(
            f"incident {incident_id} is {incident['state']}: a closed incident cannot be "
            "acknowledged (assign it or add a note instead)",
            incident=incident_id,
        )
    acknowledged = oncall_of(incident)["acknowledged"]
    if acknowledged is not None:
        raise Conflict(
            f"incident {incident_id} was already acknowledged by {acknowledged['by']} "
            f"at {acknowledged['at']}",
            incident=incident_id,
        )
    repo.update_incident(
        incident_id, event=ACKNOWLEDGED, text=f"by {actor}", entry={"actor": actor}
    )
    store.audit(
        actor, "incident.acknowledge", f"incident:{incident_id}", {"model": incident["model"]}
    )
    return oncall_of(repo.get_incident(incident_id))


def assign(store: Store, incident_id: int, *, assignee: object, actor: str) -> dict[str, Any]:
    """Make ``assignee`` the person who owns the incident (closed ones too: the follow-up);
    anything but a non-empty name of at most ``MAX_ASSIGNEE_CHARS`` is refused."""
    name = assignee.strip() if isinstance(assignee, str) else ""
    if not name:
        raise InvalidInput("'assignee' is required: the name of the person who owns the incident")
    if len(name) > MAX_ASSIGNEE_CHARS:
        raise InvalidInput(f"'assignee' is at most {MAX_ASSIGNEE_CHARS} characters")
    repo = AgentRepo(store)
    incident = repo.get_incident(incident_id)
    repo.update_incident(
        incident_id,
        event=ASSIGNED,
        text=f"to {name} by {actor}",
        entry={"actor": actor, "assignee": name},
    )
    store.audit(
        actor,
        "incident.assign",
        f"incident:{incident_id}",
        {"model": incident["model"], "assignee": name},
    )
    return oncall_of(repo.get_incident(incident_id))


def annotate(store: Store, incident_id: int, *, text: object, actor: str) -> dict[str, Any]:
    """Add a note by ``actor`` to the incident (closed ones too: the post-mortem); anything but
    a non-empty string of at most ``MAX_NOTE_CHARS`` is refused."""
    if not isinstance(text, str):
        raise InvalidInput("'text' is required: the note, as a string")
    note = text.strip()
    if not note:
        raise InvalidInput("'text' is required: the note cannot be empty")
    if len(note) > MAX_NOTE_CHARS:
        raise InvalidInput(f"the note is {len(note)} characters; at most {MAX_NOTE_CHARS} are kept")
    repo = AgentRepo(store)
    incident = repo.get_incident(incident_id)
    repo.update_incident(incident_id, event=NOTE, text=note, entry={"actor": actor})
    store.audit(
        actor,
        "incident.annotate",
        f"incident:{incident_id}",
        {"model": incident["model"], "note": note},
    )
    return oncall_of(repo.get_incident(incident_id))


def _reason(reason: object) -> str:
    text = reason.strip() if isinstance(reason, str) else ""
    if not text:
        raise InvalidInput("'reason' is required: why the drift is (no longer) acceptable")
    if len(text) > MAX_NOTE_CHARS:
        raise InvalidInput(f"'reason' is at most {MAX_NOTE_CHARS} characters")
    return text


def accept(store: Store, incident_id: int, *, reason: object, actor: str) -> dict[str, Any]:
    """``actor`` accepts an open drift incident's drift (or a drop on drifting inputs) as the
    new normal: the agent stops working on it, and it absorbs only that drift. ``Conflict``
    for another scope or an incident not open; undone by :func:`reopen`."""
    why = _reason(reason)
    accept_incident(store, incident_id, actor=actor, why=f"by {actor}: {why}")
    return oncall_of(AgentRepo(store).get_incident(incident_id))


def reopen(store: Store, incident_id: int, *, reason: object, actor: str) -> dict[str, Any]:
    """Undo an acceptance: the incident is open again and the agent works on it (and does not
    accept it again by itself). ``Conflict`` unless it is accepted."""
    why = _reason(reason)
    reopen_incident(store, incident_id, actor=actor, why=f"by {actor}: {why}")
    return oncall_of(AgentRepo(store).get_incident(incident_id))


def oncall_of(incident: Mapping[str, Any]) -> dict[str, Any]:
    """The incident's on-call state from its timeline: ``acknowledged`` (``by``, ``at``) or
    None, ``assignee`` (``name``, ``by``, ``at``; the latest assignment) or None, and ``notes``
    (``by``, ``at``, ``text``), oldest first."""
    acknowledged: dict[str, Any] | None = None
    assignee: dict[str, Any] | None = None
    notes: list[dict[str, Any]] = []
    for entry in incident.get("timeline") or []:
        event = entry.get("event")
        if event == ACKNOWLEDGED and acknowledged is None:
            acknowledged = {"by": entry.get("actor"), "at": entry["ts"]}
        elif event == ASSIGNED:
            assignee = {"name": entry.get("assignee"), "by": entry.get("actor"), "at": entry["ts"]}
        elif event == NOTE:
            notes.append({"by": entry.get("actor"), "at": entry["ts"], "text": entry.get("text")})
    return {
        "incident": incident["id"],
        "state": incident["state"],
        "acknowledged": acknowledged,
        "assignee": assignee,
        "notes": notes,
    }


__all__ = [
    "MAX_ASSIGNEE_CHARS",
    "MAX_NOTE_CHARS",
    "accept",
    "acknowledge",
    "annotate",
    "assign",
    "oncall_of",
    "reopen",
]
