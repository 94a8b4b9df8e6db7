"""The placeholders of a playbook's checks, filled from what is known about an incident.

A check is written once for every model (``mlwarden signals MODEL --signal null_rate.FEATURE``);
on an incident page it should be the command to paste, so ``MODEL``, ``FEATURE`` and
``INCIDENT`` are replaced by the incident's model, its leading culprit feature and its id. What
is not known stays a placeholder. A value is quoted for where it goes: SQL string literals
double their quotes, shell words are quoted when they are not plain.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping

__all__ = ["PLACEHOLDERS", "fill", "fill_checks"]

# the placeholders mlwarden fills; others (BROKER, POD, VIEW ...) name the user's own systems
PLACEHOLDERS = ("MODEL", "FEATURE", "INCIDENT")
_SQL_KINDS = ("query", "source_query")
_PLAIN_WORD = re.compile(r"^[A-Za-z0-9_.\-]+$")


def _quoted(value: str, kind: str) -> str:
    if kind in _SQL_KINDS:
        return value.replace("'", "''")  # every placeholder of a query sits in a string literal
    if kind == "command" and not _PLAIN_WORD.match(value):
        return shlex.quote(value)
    return value


def fill(text: str, kind: str, values: Mapping[str, object | None]) -> str:
    """``text`` with each known placeholder (a whole word) replaced by its value."""
    for name in PLACEHOLDERS:
        value = values.get(name)
        if value is None or value == "":
            continue
        # a replacement string reads backslashes as escapes: each is doubled to stay itself
        text = re.sub(rf"\b{name}\b", _quoted(str(value), kind).replace("\\", "\\\\"), text)
    return text


def fill_checks(
    checks: Iterable[Mapping[str, str]],
    *,
    model: str | None = None,
    feature: str | None = None,
    incident: int | None = None,
) -> list[dict[str, str]]:
    """Checks (``title``, ``kind``, ``run``) with their placeholders filled where known."""
    values = {"MODEL": model, "FEATURE": feature, "INCIDENT": incident}
    return [
        {
            **check,
            "title": fill(check["title"], "text", values),
            "run": fill(check["run"], check["kind"], values),
        }
        for check in checks
    ]
