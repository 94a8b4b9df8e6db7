"""Fault kinds, one module each, registered in :mod:`~mlwarden.scenarios.faults.registry`; the
simulator and the demo inject them through the same hooks
(:class:`~mlwarden.scenarios.faults.base.InjectedFault`)."""

from mlwarden.scenarios.faults.base import Effect, InjectedFault, Serving, Unattended
from mlwarden.scenarios.faults.inject import active_mask, break_request, inject
from mlwarden.scenarios.faults.registry import build, fault_class, kinds, registered

__all__ = [
    "Effect",
    "InjectedFault",
    "Serving",
    "Unattended",
    "active_mask",
    "break_request",
    "build",
    "fault_class",
    "inject",
    "kinds",
    "registered",
]
