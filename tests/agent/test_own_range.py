"""A drop within the champion's own range before its change point asks no retrain."""

from __future__ import annotations

import pandas as pd
from agent_helpers import MODEL, START, store_windows

from mlwarden.agent.decide import decide
from mlwarden.agent.guards import ModelContext
from mlwarden.agent.incidents import WindowView
from mlwarden.agent.loop import Agent
from mlwarden.agent.own_range import OwnRange, beyond_own_range
from mlwarden.agent.policy import Diagnosis, load_policy_text
from mlwarden.domain import ActionKind, Finding, FindingKind
from mlwarden.store.repository import Store

POLICY = load_policy_text("defaults: {}")

# the champion's accuracy on the New York flights in time order, windows 0-8 (control_flights),
# and on the electricity windows before and after the flip of elec_concept_change (shuffled)
FLIGHTS = [(w, a, 1000) for w, a in enumerate([0.715, 0.861, 0.784, 0.699, 0.665, 0.869])]
ELEC = [(w, a, 1000) for w, a in enumerate([0.772, 0.768, 0.776, 0.760])]


def test_a_season_within_the_champions_own_range_is_no_change_to_retrain_for() -> None:
    why = beyond_own_range(OwnRange("accuracy", 9, FLIGHTS, 0.7098, 3801))
    assert why is not None
    assert "0.7098 on 3801 labelled records" in why
    assert "(0.6650 in window 4 to 0.8690)" in why and "natural drift" in why


def test_a_drop_below_the_champions_worst_window_is_a_change() -> None:
    assert beyond_own_range(OwnRange("accuracy", 4, ELEC, 0.55, 2400)) is None
    # the same drop against the flights' seasonal range would be natural
    assert beyond_own_range(OwnRange("accuracy", 9, FLIGHTS, 0.70, 2400)) is not None


def test_nothing_to_compare_with_is_no_reason_to_refuse() -> None:
    assert beyond_own_range(OwnRange("accuracy", 1, [], 0.60, 2000)) is None
    assert beyond_own_range(OwnRange("accuracy", 4, ELEC, None)) is None
    # a window with few labels does not bound the range
    thin = [*ELEC, (4, 0.40, 20)]
    assert beyond_own_range(OwnRange("accuracy", 5, thin, 0.60, 900)) is None


def _drop() -> list[WindowView]:
    drop = Finding(
        kind=FindingKind.CONCEPT_DRIFT,
        detector="test",
        features=[],
        statistic="accuracy_drop",
        score=0.4,
        threshold=0.1,
        message="accuracy dropped",
        evidence={"performance_drop": 0.08},
    )
    return [WindowView(window=i, findings=[drop] if i else []) for i in range(5)]


def _ctx(own: OwnRange) -> ModelContext:
    return ModelContext(
        model=MODEL,
        now=START,
        labels_available=5000,
        change_window=own.change_window,
        labels_since_change=own.since_labels,
        own_range=lambda: own,
    )


def test_a_concept_drift_retrain_is_asked_only_for_a_drop_beyond_the_champions_range() -> None:
    policy = POLICY.for_model(MODEL)
    natural = decide(_drop(), _ctx(OwnRange("accuracy", 9, FLIGHTS, 0.7098, 3801)), policy)
    assert natural.diagnosis is Diagnosis.CONCEPT_DRIFT
    assert natural.action is ActionKind.ALERT
    refused = [a for a in natural.alternatives if a.action is ActionKind.RETRAIN]
    assert refused and "within its own range" in refused[0].reason
    real = decide(_drop(), _ctx(OwnRange("accuracy", 4, ELEC, 0.55, 2400)), policy)
    assert real.action is ActionKind.RETRAIN and real.params["since_window"] == 3


def _flipped(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(target=1 - frame["target"])


def test_the_agent_replays_the_champion_on_the_windows_before_and_after_the_change(
    store: Store, deployed: dict, elec: pd.DataFrame
) -> None:
    """Four windows of electricity, then two more: the same kind of records (natural: the
    metric since stays within the champion's range), or with the relation flipped (a change)."""
    before = [elec.iloc[a : a + 1000] for a in range(2000, 6000, 1000)]
    store_windows(store, [*before, elec.iloc[3000:4000], elec.iloc[4000:5000]], deployed["v2"])
    own = Agent(store, policy=POLICY)._own_range(MODEL, 4, deployed["v2"])
    assert own is not None and [w for w, _, _ in own.before] == [0, 1, 2, 3]
    assert own.since_labels == 2000
    assert min(a for _, a, _ in own.before) <= own.since  # the same records as windows 1-2
    assert beyond_own_range(own) is not None


def test_a_flipped_relation_after_the_change_is_beyond_the_champions_range(
    store: Store, deployed: dict, elec: pd.DataFrame
) -> None:
    before = [elec.iloc[a : a + 1000] for a in range(2000, 6000, 1000)]
    after = [_flipped(elec.iloc[6000:7000]), _flipped(elec.iloc[7000:8000])]
    store_windows(store, [*before, *after], deployed["v2"])
    own = Agent(store, policy=POLICY)._own_range(MODEL, 4, deployed["v2"])
    assert own is not None and own.since is not None and len(own.before) == 4
    assert own.since < min(a for _, a, _ in own.before) - 0.2
    assert beyond_own_range(own) is None
