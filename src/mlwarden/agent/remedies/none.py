"""The ``none`` action: the agent decided to change nothing (noise, or drift it accepts)."""

from __future__ import annotations

from typing import Any

from mlwarden.agent.remedies.base import ExecEnv, Remedy, VerifyTarget
from mlwarden.agent.remedies.registry import register
from mlwarden.domain import ActionKind
from mlwarden.store.journal import ActionRow


@register
class NoAction(Remedy):
    kind = ActionKind.NONE
    phrase = "take no action"
    verifies = VerifyTarget.NOTHING
    remedial = False

    def execute(self, env: ExecEnv, action: ActionRow) -> dict[str, Any]:
        return {}
