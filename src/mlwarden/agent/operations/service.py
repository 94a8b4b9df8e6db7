"""``Operations``: the one service every change to a model goes through.

The API, the dashboard, the command line, the assistant, the scenarios and the agent's loop
all call it, so a change means the same whoever asks: a deploy, a rollback (one rule for its
target, ``deployments.rollback_target``), an undo, a remedy run or undone, an approval
answered. An approval only records the answer and journals the action; the agent runs it once,
on its next pass (``Agent.recover``), with the configured policy, never inside the request that
approved it. Every remedy runs with the policy this service was given, or else the configured
one (``MLWARDEN_AGENT_POLICY``), never the bundled default by accident.

>>> from mlwarden.store import Store
>>> from mlwarden.domain import FeatureSpec, ModelSpec
>>> store = Store("sqlite://")
>>> store.create_model(ModelSpec(name="m", task="regression",
...                              features=[FeatureSpec(name="x")], target="y"), actor="me")
>>> for _ in range(2):
...     _ = store.add_version("m", kind="remote", endpoint={"url": "http://h/", "protocol":
...         "json", "remote_name": None, "headers": {}}, training_metrics={}, actor="me")
>>> ops = Operations(store, actor="me")
>>> ops.deploy("m", 1, reason="first").live_version, ops.deploy("m", 2).live_version
(1, 2)
>>> ops.rollback("m", reason="worse").live_version
1
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from mlwarden.agent.operations import actions, deployments
from mlwarden.agent.policy import Policy, configured_policy
from mlwarden.agent.remedies.base import ExecEnv
from mlwarden.domain import Deployment, DeploymentState, Role
from mlwarden.errors import InvalidInput
from mlwarden.settings import Settings
from mlwarden.store.approvals import Answer, ApprovalRow, Approvals, ApprovedRow
from mlwarden.store.journal import ActionJournal, ActionRow
from mlwarden.store.repository import Store


class Operations:
    """Changes to models by ``actor``: deployments, remedies, approvals.

    ``policy`` is the agent's own (the loop and the simulator pass theirs); without it the
    configured policy of ``settings`` is read once, here. ``invalidate`` is called with the
    model's name after each change (the server's gateway forgets its cached route).
    """

    def __init__(
        self,
        store: Store,
        *,
        actor: str = "system",
        policy: Policy | None = None,
        settings: Settings | None = None,
        invalidate: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self.actor = actor
        self._policy = policy
        self._settings = settings
        self._invalidate = invalidate

    @property
    def policy(self) -> Policy:
        if self._policy is None:
            self._policy = configured_policy(self._settings)
        return self._policy

    def _changed(self, model: str) -> None:
        if self._invalidate is not None:
            self._invalidate(model)

    # ------------------------------------------------------------------ deployments

    def _write(
        self,
        model: str,
        event: str,
        state: DeploymentState,
        *,
        reason: str,
        environment: str,
        details: Mapping[str, Any] | None = None,
    ) -> Deployment:
        deployment = deployments.write(
            self.store,
            model,
            state,
            actor=self.actor,
            reason=reason,
            event=event,
            details={"environment": environment, **(details or {})},
            environment=environment,
        )
        self._changed(model)
        return deployment

    def _state(self, model: str, environment: str) -> DeploymentState:
        return deployments.state_of(self.store.get_deployment(model, environment))

    def _update(
        self,
        model: str,
        event: str,
        *,
        reason: str,
        environment: str,
        details: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> Deployment:
        """The current routing with ``fields`` changed, written as a new revision."""
        state = self._state(model, environment).model_copy(update=fields)
        return self._write(
            model, event, state, reason=reason, environment=environment, details=details
        )

    def replace(
        self,
        model: str,
        state: DeploymentState,
        *,
        reason: str = "",
        environment: str = "production",
    ) -> Deployment:
        """Replace the whole routing with ``state`` (a new revision). The event is ``deploy``
        when the live version changes, ``disable``/``enable`` when only that flag does, else
        ``deployment``; its details list every field that changed, from and to."""
        before = self.store.get_deployment(model, environment)
        changes = {
            field: {
                "from": None if before is None else getattr(before, field),
                "to": getattr(state, field),
            }
            for field in sorted(deployments.STATE_FIELDS)
            if before is None or getattr(before, field) != getattr(state, field)
        }
        details: dict[str, Any] = {"changes": changes}
        if before is None or before.live_version != state.live_version:
            event = "deploy"
            details |= {
                "version": state.live_version,
                "previous": None if before is None else before.live_version,
            }
        elif before.disabled != state.disabled:
            event = "disable" if state.disabled else "enable"
        else:
            event = "deployment"
        return self._write(
            model, event, state, reason=reason, environment=environment, details=details
        )

    def change(
        self,
        model: str,
        changes: Mapping[str, Any],
        *,
        reason: str = "",
        environment: str = "production",
    ) -> Deployment:
        """``changes`` over the current routing as a new revision; removing the canary removes
        its share. Raises pydantic's ``ValidationError`` on a bad value (the API turns it into
        a 422 naming the field)."""
        unknown = sorted(set(changes) - deployments.STATE_FIELDS)
        if unknown:
            raise InvalidInput(
                f"unknown deployment fields {unknown}; known: "
                f"{sorted(deployments.STATE_FIELDS)} and 'reason'",
                fields=unknown,
            )
        merged = {**self._state(model, environment).model_dump(), **changes}
        if "canary_version" in changes and changes["canary_version"] is None:
            merged["canary_weight"] = 0.0
        state = DeploymentState.model_validate(merged)
        return self.replace(model, state, reason=reason, environment=environment)

    def deploy(
        self, model: str, version: int, *, reason: str = "", environment: str = "production"
    ) -> Deployment:
        """Make ``version`` the live version (a canary of that same version is retired)."""
        state = self._state(model, environment)
        previous = state.live_version
        update: dict[str, Any] = {"live_version": version}
        if state.canary_version == version:
            update |= {"canary_version": None, "canary_weight": 0.0}
        return self._write(
            model,
            "deploy",
            state.model_copy(update=update),
            reason=reason,
            environment=environment,
            details={"version": version, "previous": previous},
        )

    def set_fallback(
        self,
        model: str,
        version: int | None,
        *,
        reason: str = "",
        environment: str = "production",
    ) -> Deployment:
        return self._update(
            model,
            "fallback",
            reason=reason,
            environment=environment,
            details={"version": version},
            fallback_version=version,
        )

    def set_canary(
        self,
        model: str,
        version: int | None,
        weight: float = 0.1,
        *,
        reason: str = "",
        environment: str = "production",
    ) -> Deployment:
        """Send ``weight`` of the traffic to ``version`` (None removes the canary)."""
        if version is not None and not 0.0 < weight <= 1.0:
            raise InvalidInput(f"a canary weight must be in (0, 1], got {weight}")
        weight = weight if version is not None else 0.0
        return self._update(
            model,
            "canary",
            reason=reason,
            environment=environment,
            details={"version": version, "weight": weight},
            canary_version=version,
            canary_weight=weight,
        )

    def set_shadow(
        self,
        model: str,
        version: int | None,
        *,
        reason: str = "",
        environment: str = "production",
    ) -> Deployment:
        return self._update(
            model,
            "shadow",
            reason=reason,
            environment=environment,
            details={"version": version},
            shadow_version=version,
        )

    def disable(
        self,
        model: str,
        *,
        reason: str = "",
        default_response: Any = None,
        environment: str = "production",
    ) -> Deployment:
        """Stop serving (503, or ``default_response`` when given)."""
        return self._update(
            model,
            "disable",
            reason=reason,
            environment=environment,
            details={"default_response": default_response},
            disabled=True,
            default_response=default_response,
        )

    def enable(
        self, model: str, *, reason: str = "", environment: str = "production"
    ) -> Deployment:
        return self._update(
            model,
            "enable",
            reason=reason,
            environment=environment,
            disabled=False,
            default_response=None,
        )

    def rollback(
        self, model: str, *, reason: str = "", environment: str = "production"
    ) -> Deployment:
        """Make the version that served before live again (``deployments.rollback_target``,
        the agent's rule); refused when there is none or it is marked unhealthy."""
        current, target = deployments.rollback_choice(self.store, model, environment)
        state = self._state(model, environment)
        update: dict[str, Any] = {"live_version": target}
        if state.canary_version == target:
            update |= {"canary_version": None, "canary_weight": 0.0}
        return self._write(
            model,
            "rollback",
            state.model_copy(update=update),
            reason=reason,
            environment=environment,
            details={"from": current, "to": target},
        )

    def undo_revision(
        self, model: str, revision: int, *, reason: str = "", environment: str = "production"
    ) -> Deployment:
        """Restore deployment revision ``revision`` (written as a new revision)."""
        deployment = deployments.restore(
            self.store,
            model,
            revision,
            actor=self.actor,
            reason=reason or f"undo to revision {revision}",
            environment=environment,
        )
        self._changed(model)
        return deployment

    # ------------------------------------------------------------------ actions

    def env(self, model: str) -> ExecEnv:
        """What a remedy of ``model`` runs with: this service's store, journal, actor and the
        model's part of the policy."""
        return ExecEnv(
            self.store, ActionJournal(self.store), self.policy.for_model(model), self.actor
        )

    def _model_of(self, action_id: int) -> str:
        return str(ActionJournal(self.store).get(action_id)["model"])

    def run_action(self, action_id: int) -> ActionRow:
        """Run (or resume) a journaled action once (``actions.run_action``)."""
        row = actions.run_action(self.env(self._model_of(action_id)), action_id)
        self._changed(row["model"])
        return row

    def undo_action(
        self, action_id: int, *, force: bool = False, keep_later: bool = False
    ) -> ActionRow:
        """Undo what a done action changed, and nothing else (``actions.undo_action``)."""
        row = actions.undo_action(
            self.env(self._model_of(action_id)), action_id, force=force, keep_later=keep_later
        )
        self._changed(row["model"])
        return row

    # ------------------------------------------------------------------ approvals

    def approve(self, approval_id: int, *, role: Role, reason: str) -> ApprovedRow:
        """Record the approval and journal its action (pending): the agent runs it once, on its
        next pass, with its configured policy. Nothing runs here."""
        return Approvals(self.store).approve(
            approval_id, actor=self.actor, role=role, reason=reason
        )

    def reject(self, approval_id: int, *, role: Role, reason: str) -> ApprovalRow:
        return Approvals(self.store).reject(approval_id, actor=self.actor, role=role, reason=reason)

    def answer(
        self, approval_id: int, answer: Answer | object, *, role: Role, reason: object
    ) -> ApprovalRow:
        """Approve or reject by the answer's name (``store.approvals.Answer``), as the API and
        the dashboard receive it; the queue's rules are the store's."""
        return Approvals(self.store).answer(
            approval_id, answer, actor=self.actor, role=role, reason=reason
        )


__all__ = ["Operations"]
