"""One severity order (``domain.Severity``), read the same way by the agent, the dashboard and
the scenario scores."""

from __future__ import annotations

from mlwarden.agent.loop import _escalated
from mlwarden.domain import Severity
from mlwarden.ui.queries import ModelRow


def test_the_order_is_the_order_of_the_members() -> None:
    assert [level.value for level in Severity] == ["low", "medium", "high", "critical"]
    assert [level.rank for level in Severity] == [0, 1, 2, 3]
    assert Severity.worst(["high", "low", "critical", "medium"]) is Severity.CRITICAL
    assert Severity.worst([]) is None
    assert Severity.MEDIUM.raise_to(Severity.LOW) is Severity.MEDIUM
    assert Severity.HIGH.at_least(Severity.HIGH) and not Severity.MEDIUM.at_least(Severity.HIGH)


def test_an_escalation_alert_is_one_level_up_and_at_least_high() -> None:
    escalated = {level.value: _escalated(level).value for level in Severity}
    assert escalated == {
        "low": "high",
        "medium": "high",
        "high": "critical",
        "critical": "critical",
    }


def test_the_dashboard_names_the_worst_open_incident_by_the_same_order() -> None:
    # "medium" sorts after "critical" as text; the dashboard must not rank by spelling
    row = ModelRow(
        name="m",
        task="classification",
        monitoring=True,
        incidents=[{"severity": "medium"}, {"severity": "critical"}, {"severity": "low"}],
    )
    assert row.worst_severity == "critical"
