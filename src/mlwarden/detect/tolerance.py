"""The tolerance of each performance metric's drop: what ``detect.concept`` reports and what
``monitor.config.MonitorConfig`` starts from.

A module of its own, importing nothing: the policy (``agent.policy``) reads the monitor's
defaults through ``MonitorConfig``, and every server imports the policy at start; the
detectors' modules (NumPy, SciPy's statistics, the profiles) are not needed for that.
"""

from __future__ import annotations

__all__ = ["DEFAULT_TOLERANCE", "RELATIVE_TOLERANCE"]

# Metrics whose drop is reported, in order of preference, and the default tolerance of each:
# the drop that matters to a user (2 accuracy points, 0.02 AUC, 10% more RMSE).
DEFAULT_TOLERANCE: dict[str, float] = {
    "accuracy": 0.02,
    "f1": 0.03,
    "roc_auc": 0.02,
    "log_loss": 0.05,
    "rmse": 0.10,
    "mae": 0.10,
    "r2": 0.05,
}
# For errors measured in the target's units the tolerance is relative to the reference value.
RELATIVE_TOLERANCE = {"rmse", "mae"}
