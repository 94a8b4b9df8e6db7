"""The one path for changes to a model: every deployment revision and every remedy goes
through here.

``deployments`` is the only writer of deployment revisions outside the store (a revision, the
event on the model's timeline and the audit entry, in that order) and holds the one rule that
picks a rollback target; ``actions`` runs and undoes journaled actions through the registered
remedies; ``service.Operations`` is what the API, the dashboard, the command line, the
assistant, the scenarios and the agent's loop call, always with the configured policy.
``tests/test_architecture.py`` holds that no other module calls the store's
``set_deployment`` or ``undo_deployment``.
"""
