"""Model registry: skops artifacts, versions, deployments (with undo and rollback)."""

from mlwarden.registry.artifacts import dump_model, load_model
from mlwarden.registry.registry import Registry

__all__ = ["Registry", "dump_model", "load_model"]
