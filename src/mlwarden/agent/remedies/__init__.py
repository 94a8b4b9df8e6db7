"""Remedies: one class per action kind (``base.Remedy``), each in its own module and
registered there (``registry.register``); ``agent.operations.actions`` runs and undoes them.

Every one is journaled before it runs, idempotent, undoable and audited. Adding an action kind
is one new module here plus its member of ``domain.ActionKind`` (docs/architecture.md, "Adding
an action kind").
"""
