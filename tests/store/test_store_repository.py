"""The Store against real SQLite and PostgreSQL databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import inspect, text, update

from mlwarden.domain import DeploymentState, FeatureSpec, FeatureType, ModelSpec, Record, Role, Task
from mlwarden.errors import Conflict, InvalidInput, NotFound
from mlwarden.monitor.window import records_frame
from mlwarden.store import Store
from mlwarden.store import tables as t
from mlwarden.store.migrations import current_heads, script_heads
from mlwarden.store.records import SQLITE_ROWS_PER_INSERT

SPEC = ModelSpec(
    name="churn",
    task=Task.CLASSIFICATION,
    features=[
        FeatureSpec(name="age", type=FeatureType.NUMERIC, minimum=0, maximum=120),
        FeatureSpec(name="plan", type=FeatureType.CATEGORICAL, categories=["a", "b"]),
    ],
    target="churned",
    positive_class=1,
)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _records(n: int, start: int = 0, model: str = "churn") -> list[dict]:
    return [
        {
            "id": f"r{i:06d}",
            "model": model,
            "version": 1,
            "timestamp": T0 + timedelta(seconds=i),
            "features": {"age": 20 + i % 50, "plan": "ab"[i % 2]},
            "prediction": i % 2,
            "scores": {"0": 0.4, "1": 0.6},
            "latency_ms": 1.5,
        }
        for i in range(start, start + n)
    ]


def test_migrates_to_head_and_creates_every_table(store: Store) -> None:
    assert current_heads(store.engine) == script_heads()
    names = set(inspect(store.engine).get_table_names())
    assert {table.name for table in t.metadata.sorted_tables} <= names
    assert store.ping()


def test_reopening_a_migrated_database_keeps_its_data(database_url: str) -> None:
    first = Store(database_url)
    first.create_model(SPEC, actor="alice")
    first.close()
    second = Store(database_url)
    assert second.get_model("churn") == SPEC
    second.close()


def test_a_new_sqlite_file_uses_wal_and_large_pages_and_an_old_one_keeps_its_pages(
    tmp_path,
) -> None:
    import sqlite3

    from mlwarden.store.database import SQLITE_PAGE_SIZE

    new = Store(f"sqlite:///{tmp_path / 'new.db'}")
    new.close()
    with sqlite3.connect(tmp_path / "new.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA page_size").fetchone()[0] == SQLITE_PAGE_SIZE
    # a database made by an older mlwarden (4 KiB pages) opens, migrates and keeps its pages
    with sqlite3.connect(tmp_path / "old.db") as conn:
        conn.execute("PRAGMA page_size=4096")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE keep (x INTEGER)")
    old = Store(f"sqlite:///{tmp_path / 'old.db'}")
    old.create_model(SPEC)
    assert old.get_model("churn") == SPEC
    old.close()
    with sqlite3.connect(tmp_path / "old.db") as conn:
        assert conn.execute("PRAGMA page_size").fetchone()[0] == 4096


def test_ping_is_false_when_the_database_is_unreachable() -> None:
    store = Store("postgresql://postgres@127.0.0.1:1/none", migrate=False)
    assert store.ping() is False


def test_models_round_trip_and_errors(store: Store) -> None:
    store.create_model(SPEC, actor="alice")
    assert store.get_model("churn") == SPEC
    assert [m.name for m in store.list_models()] == ["churn"]
    with pytest.raises(Conflict, match="already exists"):
        store.create_model(SPEC)
    with pytest.raises(NotFound, match="known models: churn"):
        store.get_model("nope")
    store.set_monitoring("churn", False)
    assert not store.is_monitored("churn")
    assert store.monitored_models() == []
    kinds = [e["kind"] for e in store.events("churn")]
    assert kinds == ["config", "register"]


def test_versions_number_up_and_keep_their_payload(store: Store) -> None:
    store.create_model(SPEC)
    v1 = store.add_version(
        "churn",
        kind="sklearn",
        artifact=b"skops-bytes",
        training_metrics={"accuracy": 0.9},
        reference_sample=[{"age": 30, "plan": "a", "churned": 0}],
        feature_importance={"age": 0.3, "plan": 0.1},
        actor="bob",
    )
    v2 = store.add_version(
        "churn",
        kind="remote",
        endpoint={"url": "http://h/predict", "protocol": "json"},
        timeout_ms=250,
    )
    assert (v1.number, v2.number) == (1, 2)
    assert v1.has_reference and not v2.has_reference
    assert v1.training_metrics == {"accuracy": 0.9}
    assert v1.created_at.tzinfo is not None
    assert store.load_artifact("churn", 1) == b"skops-bytes"
    assert store.reference_sample("churn", 1) == [{"age": 30, "plan": "a", "churned": 0}]
    assert [v.number for v in store.list_versions("churn")] == [1, 2]
    store.set_version_health("churn", 2, "unhealthy")
    assert store.get_version("churn", 2).health == "unhealthy"
    with pytest.raises(NotFound, match=r"no version 7; versions: \[1, 2\]"):
        store.get_version("churn", 7)
    with pytest.raises(InvalidInput, match="without an artifact"):
        store.load_artifact("churn", 2)
    with pytest.raises(InvalidInput, match="endpoint with a url"):
        store.add_version("churn", kind="remote", endpoint={})


def test_deployment_revisions_and_undo(store: Store) -> None:
    store.create_model(SPEC)
    for _ in range(3):
        store.add_version("churn", kind="sklearn", artifact=b"x")
    assert store.get_deployment("churn") is None
    d1 = store.set_deployment("churn", DeploymentState(live_version=1), actor="a", reason="first")
    d2 = store.set_deployment(
        "churn",
        DeploymentState(live_version=2, fallback_version=1, canary_version=3, canary_weight=0.1),
        actor="b",
        reason="second",
    )
    assert (d1.revision, d2.revision) == (1, 2)
    assert store.get_deployment("churn") == d2
    undone = store.undo_deployment("churn", 1, actor="c", reason="back")
    assert undone.revision == 3
    assert undone.live_version == 1 and undone.canary_version is None
    assert [d.revision for d in store.deployment_history("churn")] == [3, 2, 1]
    # environments are independent
    staging = store.set_deployment(
        "churn", DeploymentState(live_version=3), actor="a", environment="staging"
    )
    assert staging.revision == 1
    with pytest.raises(NotFound, match="live version 9 does not exist"):
        store.set_deployment("churn", DeploymentState(live_version=9), actor="a")
    with pytest.raises(NotFound, match="no deployment revision 42"):
        store.undo_deployment("churn", 42, actor="a")
    with pytest.raises(InvalidInput, match="canary weight needs a canary version"):
        store.set_deployment("churn", DeploymentState(live_version=1, canary_weight=0.5), actor="a")


def test_insert_records_is_idempotent_by_id(store: Store) -> None:
    store.create_model(SPEC)
    assert store.insert_records(_records(100)) == 100
    assert store.insert_records(_records(150, start=50)) == 100  # 50 overlap
    assert store.count_records("churn") == 200
    assert store.record_ids_present(["r000000", "r000199", "zzz"]) == {"r000000", "r000199"}
    assert store.insert_records([]) == 0


def test_records_of_many_statements_are_each_stored_once_as_sent(store: Store) -> None:
    """SQLite stores records many rows per statement (``SQLITE_ROWS_PER_INSERT``): across full
    statements and the last partial one, a record sent twice (in one call or in two) is kept
    once, the count is of new records, and each keeps what was sent."""
    store.create_model(SPEC)
    per = SQLITE_ROWS_PER_INSERT
    first = _records(3 * per + 17)
    assert store.insert_records(first) == 3 * per + 17
    # ids 2 * per to 4 * per - 1, of which the last per - 17 are new, three of them twice
    again = [*_records(2 * per, start=2 * per), *_records(5, start=10)]
    again += _records(3, start=4 * per - 3)
    assert store.insert_records(again) == per - 17
    assert store.count_records("churn") == 4 * per
    stored = {r["id"]: r for r in store.fetch_records("churn", limit=10_000)}
    assert len(stored) == 4 * per
    last = stored[f"r{4 * per - 1:06d}"]
    assert last["features"] == {"age": 20 + (4 * per - 1) % 50, "plan": "ab"[(4 * per - 1) % 2]}
    assert last["prediction"] == (4 * per - 1) % 2 and last["scores"] == {"0": 0.4, "1": 0.6}


def test_insert_accepts_domain_records_and_unknown_model_fails(store: Store) -> None:
    store.create_model(SPEC)
    record = Record(
        id="x1",
        model="churn",
        timestamp=T0,
        features={"age": 1, "plan": "a"},
        prediction=1,
        served_by="canary",
    )
    assert store.insert_records([record]) == 1
    assert store.fetch_records("churn")[0]["served_by"] == "canary"
    with pytest.raises(NotFound, match="unknown model 'ghost'"):
        store.insert_records(_records(1, model="ghost"))


def test_fetch_records_orders_filters_pages_and_normalises_time(store: Store) -> None:
    store.create_model(SPEC)
    store.insert_records(_records(30))
    paris = timezone(timedelta(hours=1))
    rows = store.fetch_records(
        "churn",
        since=T0 + timedelta(seconds=10),
        until=(T0 + timedelta(seconds=20)).astimezone(paris),
    )
    assert [r["id"] for r in rows] == [f"r{i:06d}" for i in range(10, 20)]
    first = rows[0]
    assert first["timestamp"] == T0 + timedelta(seconds=10)
    assert first["timestamp"].tzinfo is not None and first["timestamp"].utcoffset() == timedelta(0)
    assert first["features"] == {"age": 30, "plan": "a"}
    assert first["scores"] == {"0": 0.4, "1": 0.6}
    assert first["label"] is None
    page1 = store.fetch_records("churn", limit=12)
    page2 = store.fetch_records("churn", limit=100, after_id=page1[-1]["id"])
    assert [r["id"] for r in page1 + page2] == [f"r{i:06d}" for i in range(30)]
    assert store.fetch_records("churn", newest_first=True, limit=1)[0]["id"] == "r000029"
    frame = records_frame(store.fetch_records("churn", limit=5))
    assert list(frame.columns[:2]) == ["age", "plan"]
    assert frame["age"].tolist() == [20, 21, 22, 23, 24]


def test_records_by_arrival_reads_every_stored_value_as_fetch_records_does(store: Store) -> None:
    """The agent's window read decodes SQLite's stored text itself: every kind of JSON value
    (numbers SQLite keeps as numbers, strings, nulls, floats, nested) and time comes back as
    SQLAlchemy's own types give it."""
    store.create_model(SPEC)
    values = [1, 0.25, "yes", None, True, {"a": [1, None]}, "1", -3e-9]
    rows = []
    for i, value in enumerate(values):
        row = _records(1, start=i)[0]
        row |= {"prediction": value, "received_at": T0 + timedelta(microseconds=i)}
        row["scores"] = None if i % 3 == 0 else value if i % 3 == 1 else {"x": value}
        row["features"] = {"age": value, "plan": None}
        row["error"] = "boom" if i == 2 else None
        rows.append(row)
    store.insert_records(rows)
    store.add_feedback("churn", [(r["id"], v) for r, v in zip(rows, values, strict=True) if v])
    by_arrival = store.records_by_arrival("churn")
    fetched = {r["id"]: r for r in store.fetch_records("churn")}
    assert [r["id"] for r in by_arrival] == [r["id"] for r in rows]
    for got in by_arrival:
        want = fetched[got["id"]]
        assert got == {k: want[k] for k in got}
        assert [type(v) for v in got.values()] == [type(want[k]) for k in got]
    assert by_arrival[0]["received_at"] == T0 and by_arrival[0]["received_at"].tzinfo is UTC
    after_first = store.records_by_arrival("churn", after=(T0, "r000000"), limit=1)
    assert after_first[0]["prediction"] == 0.25
    # the same records as columns (the agent's windows): the same values, of the same types
    columns = store.columns_by_arrival("churn")
    assert list(columns["id"]) == [r["id"] for r in by_arrival]
    for key, values in columns.items():
        assert list(values) == [r[key] for r in by_arrival], key
        assert [type(v) for v in values] == [type(r[key]) for r in by_arrival], key
    later = store.columns_by_arrival("churn", after=(T0, "r000000"), limit=2)
    assert list(later["id"]) == [r["id"] for r in by_arrival[1:3]]
    assert all(list(v) == [] for v in store.columns_by_arrival("churn", limit=0).values())


def test_feedback_reports_unknown_ids_and_updates_labels(store: Store) -> None:
    store.create_model(SPEC)
    other = SPEC.model_copy(update={"name": "other"})
    store.create_model(other)
    store.insert_records(_records(5))
    store.insert_records(_records(1, start=100, model="other"))
    accepted, unknown = store.add_feedback(
        "churn", [("r000000", 1), ("r000001", 0), ("nope", 1), ("r000100", 1)]
    )
    assert accepted == 2
    assert unknown == ["nope", "r000100"]  # r000100 belongs to another model
    assert store.add_feedback("churn", [("r000000", 0)]) == (1, [])
    labels = {r["id"]: r["label"] for r in store.fetch_records("churn")}
    assert labels == {"r000000": 0, "r000001": 0, "r000002": None, "r000003": None, "r000004": None}
    assert store.count_feedback("churn") == 2
    # the answers alone (an incident's diagnosis): the same answers and labels, nothing else
    full = store.fetch_records("churn", newest_first=True)
    lean = store.fetch_records("churn", newest_first=True, answers_only=True)
    keys = ("id", "timestamp", "features", "prediction", "label")
    assert [{k: r[k] for k in keys} for r in lean] == [{k: r[k] for k in keys} for r in full]
    assert set(lean[0]) == {*keys, "model"}


def test_a_label_keeps_its_value_and_time_and_the_newest_replaces_it(store: Store) -> None:
    """Labels of any JSON kind and their arrival time read back as sent (SQLite writes them
    without SQLAlchemy's type processors); a label sent again replaces value and time."""
    store.create_model(SPEC)
    store.insert_records(_records(3))
    first, later = T0 + timedelta(minutes=1), T0 + timedelta(minutes=2, microseconds=7)
    assert store.add_feedback("churn", [("r000000", "yes"), ("r000001", 2.5)], ts=first) == (2, [])
    store.add_feedback("churn", [("r000000", {"class": "no"}), ("r000002", None)], ts=later)
    got = {r["id"]: (r["label"], r["label_ts"]) for r in store.fetch_records("churn")}
    assert got == {
        "r000000": ({"class": "no"}, later),
        "r000001": (2.5, first),
        "r000002": (None, later),
    }
    assert store.count_feedback("churn") == 3
    # the ids asked for in more than one statement, of this model only
    store.create_model(SPEC.model_copy(update={"name": "other"}))
    store.insert_records(_records(1, start=1500, model="other"))
    asked = [f"r{i:06d}" for i in range(2000)]
    assert store.record_ids_present(asked, "churn") == {"r000000", "r000001", "r000002"}
    assert store.record_ids_present(asked, "other") == {"r001500"}


def test_two_models_may_use_the_same_record_ids(store: Store) -> None:
    """Issue 13 item 7: a record was silently dropped when another model had used its id."""
    store.create_model(SPEC)
    store.create_model(SPEC.model_copy(update={"name": "other"}))
    old = _records(5)
    for row in old:
        row["received_at"] = T0
    assert store.insert_records(old) == 5
    theirs = _records(5, model="other")
    for row in theirs:
        row["prediction"] = 7
    assert store.insert_records(theirs) == 5  # same ids, other model: all stored
    assert store.insert_records(_records(5, model="other")) == 0  # still idempotent per model
    assert store.count_records("churn") == store.count_records("other") == 5
    assert {r["prediction"] for r in store.fetch_records("other")} == {7}
    assert {r["prediction"] for r in store.fetch_records("churn")} == {0, 1}

    # labels land on the record of the model they are sent for, and only there
    assert store.add_feedback("churn", [("r000000", "yes"), ("r000001", "yes")]) == (2, [])
    assert store.add_feedback("other", [("r000000", "no")]) == (1, [])
    churn = {r["id"]: r["label"] for r in store.fetch_records("churn")}
    other = {r["id"]: r["label"] for r in store.fetch_records("other")}
    assert (churn["r000000"], churn["r000001"], other["r000000"], other["r000001"]) == (
        "yes",
        "yes",
        "no",
        None,
    )
    assert store.count_feedback("churn") == 2 and store.count_feedback("other") == 1
    # paging continues after the record of this model
    page = store.fetch_records("other", limit=10, after_id="r000002")
    assert [(r["id"], r["prediction"]) for r in page] == [("r000003", 7), ("r000004", 7)]

    # retention takes churn's old records and labels, not the other model's namesakes
    assert store.purge_records(T0 + timedelta(seconds=1)) == 5
    assert store.count_records("churn") == store.count_feedback("churn") == 0
    assert store.count_records("other") == 5 and store.count_feedback("other") == 1
    assert store.fetch_records("other")[0]["label"] == "no"


def test_purge_removes_old_records_and_their_labels(store: Store) -> None:
    store.create_model(SPEC)
    rows = _records(10)
    for i, row in enumerate(rows):
        row["received_at"] = T0 + timedelta(seconds=i)
    store.insert_records(rows)
    # a backfill: event times long past, received now; retention goes by arrival
    store.insert_records(_records(3, start=100))
    store.add_feedback("churn", [("r000001", 1), ("r000008", 0), ("r000100", 1)])
    assert store.purge_records(T0 + timedelta(seconds=5)) == 5
    assert store.count_records("churn") == 8
    assert store.count_feedback("churn") == 2
    assert {"r000100", "r000101", "r000102"} <= store.record_ids_present(
        ["r000100", "r000101", "r000102"]
    )


def test_audit_chain_verifies_and_detects_tampering(store: Store) -> None:
    store.audit("alice", "deploy", "churn", {"version": 1, "when": T0})
    store.audit("bob", "rollback", "churn", {"to": 1})
    store.create_model(SPEC, actor="carol")  # audited too
    assert store.verify_audit() == (True, None)
    entries = store.audit_entries()
    assert [e["action"] for e in entries] == ["model.register", "rollback", "deploy"]
    assert entries[1]["prev_hash"] == entries[2]["hash"]
    assert store.audit_entries(actor="bob")[0]["details"] == {"to": 1}
    with store.engine.begin() as conn:
        conn.execute(
            update(t.audit_log).where(t.audit_log.c.actor == "bob").values(details={"to": 2})
        )
    ok, bad = store.verify_audit()
    assert not ok and bad == entries[1]["id"]


def test_audit_detects_a_deleted_entry(store: Store) -> None:
    for i in range(3):
        store.audit("a", "x", str(i))
    with store.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_log WHERE target = '1'"))
    assert store.verify_audit()[0] is False


def test_tokens_are_stored_hashed_and_revocable(store: Store) -> None:
    token = store.create_token("ci", Role.OPERATOR)
    assert store.authenticate(token) == ("ci", Role.OPERATOR)
    assert store.authenticate(token + "x") is None
    assert store.authenticate("") is None
    with store.engine.connect() as conn:
        stored = conn.execute(text("SELECT token_hash FROM api_tokens")).scalar()
    assert token not in stored and len(stored) == 64
    with pytest.raises(Conflict):
        store.create_token("ci", "admin")
    store.revoke_token("ci")
    assert store.authenticate(token) is None
    with pytest.raises(NotFound):
        store.revoke_token("ci")
    again = store.create_token("ci", "admin")
    assert store.authenticate(again) == ("ci", Role.ADMIN)
    assert [tok["name"] for tok in store.list_tokens()] == ["ci"]


def test_events_are_global_or_per_model(store: Store) -> None:
    store.create_model(SPEC)
    store.add_event(None, "maintenance", "ops", {"note": "db upgrade"})
    store.add_event("churn", "deploy", "alice", {"version": 1})
    assert [e["kind"] for e in store.events("churn")] == ["deploy", "register"]
    everything = store.events(None)
    assert everything[0]["model"] == "churn" and everything[1]["model"] is None
    assert [e["kind"] for e in store.events(kinds=["maintenance"])] == ["maintenance"]


def test_records_of_one_request_share_times_and_answers_yet_keep_each_value(store: Store) -> None:
    """A request's records share their times and often their answer, which the store converts
    once: each record reads back as the same record stored alone does, answers equal as keys
    but not as JSON (1 and True, 0.0 and -0.0) included, and so do a batch's labels."""
    store.create_model(SPEC)
    store.create_model(SPEC.model_copy(update={"name": "alone"}))
    answers = [1, True, 0.0, -0.0, "1", 1, None, float("nan"), {"a": 1}, True, 2.5, 2.5]
    labels = [1, True, 0.0, -0.0, "1", 1, 2.5, None, "1", False, -0.0, 0.0]
    batch = []
    for i, answer in enumerate(answers):
        row = _records(1, start=i)[0]
        row |= {"prediction": answer, "timestamp": T0, "received_at": T0 + timedelta(hours=1)}
        batch.append(row)
        store.insert_records([row | {"model": "alone"}])
        store.add_feedback("alone", [(row["id"], labels[i])])
    store.insert_records(batch)
    store.add_feedback("churn", [(r["id"], v) for r, v in zip(batch, labels, strict=True)])
    together, alone = store.records_by_arrival("churn"), store.records_by_arrival("alone")
    for key in ("prediction", "label", "timestamp", "received_at"):
        assert [r[key] for r in together] == [r[key] for r in alone], key
        assert [repr(r[key]) for r in together] == [repr(r[key]) for r in alone], key
    assert {r["received_at"] for r in together} == {T0 + timedelta(hours=1)}
    assert [r["prediction"] for r in together][:2] == [1, True]
    columns = store.columns_by_arrival("churn")
    assert list(columns["received_at"]) == [T0 + timedelta(hours=1)] * len(answers)
