"""Action executors, one per action kind; ``agent.operations.actions`` runs and undoes them."""

from __future__ import annotations

from mlwarden.agent.executors.alert import run_alert
from mlwarden.agent.executors.base import Executor
from mlwarden.agent.executors.deploy import (
    run_canary,
    run_disable,
    run_fallback,
    run_promote,
    run_repair,
    run_rollback,
    run_shadow,
)
from mlwarden.agent.executors.retrain import run_retrain
from mlwarden.domain import ActionKind

__all__ = ["EXECUTORS"]

EXECUTORS: dict[ActionKind, Executor] = {
    ActionKind.ALERT: run_alert,
    ActionKind.ROLLBACK: run_rollback,
    ActionKind.FALLBACK: run_fallback,
    ActionKind.DISABLE: run_disable,
    ActionKind.CANARY: run_canary,
    ActionKind.SHADOW: run_shadow,
    ActionKind.PROMOTE: run_promote,
    ActionKind.RETRAIN: run_retrain,
    ActionKind.REPAIR: run_repair,
}
