"""An investigation's probe records a page at a time, cut out of the stored array by the
database (SQLite's ``json_each``, PostgreSQL's ``json_array_elements``), and the brief of each
result that the list reads out of the stored result, on both databases."""

from __future__ import annotations

import math

import pytest

from mlwarden.errors import NotFound
from mlwarden.store import Store
from mlwarden.store.investigations import MAX_RECORDS_PAGE, RECORDS_PAGE, InvestigationRepo


def _records(n: int) -> list[dict[str, object]]:
    return [
        {
            "id": f"r{k}",
            "features": {"x": k / 3, "c": "é" if k % 2 else None},
            "scores": {"0": 0.25, "1": 0.75},
            "latency_ms": math.nan if k == 7 else 1.5,  # stored as null
            "error": None,
        }
        for k in range(n)
    ]


def test_the_records_come_a_page_at_a_time_in_the_order_they_were_made(store: Store) -> None:
    repo = InvestigationRepo(store)
    investigation = repo.create("http://127.0.0.1:9/p", {}, "t")
    empty = repo.records_page(investigation)
    assert empty.records == [] and empty.total == 0 and empty.next_offset is None
    records = _records(2_345)
    repo.save(investigation, records=records)

    first = repo.records_page(investigation)
    assert first.total == 2_345 and len(first.records) == RECORDS_PAGE
    assert first.as_dict() == {
        "offset": 0,
        "limit": RECORDS_PAGE,
        "returned": RECORDS_PAGE,
        "total": 2_345,
        "next_offset": RECORDS_PAGE,
    }
    got = []
    offset: int | None = 0
    while offset is not None:
        page = repo.records_page(investigation, offset, 700)
        got += page.records
        offset = page.next_offset
    assert [r["id"] for r in got] == [r["id"] for r in records]
    assert got[7]["latency_ms"] is None and got[8] == records[8]
    assert got[1]["features"] == {"x": 1 / 3, "c": "é"}
    last = repo.records_page(investigation, 2_300, MAX_RECORDS_PAGE)
    assert len(last.records) == 45 and last.next_offset is None
    beyond = repo.records_page(investigation, 9_999, 10)
    assert beyond.records == [] and beyond.total == 2_345 and beyond.next_offset is None
    # the whole array is what it was
    assert repo.get(investigation, with_records=True)["records"][9] == records[9]


@pytest.mark.parametrize(("offset", "limit"), [(-1, 10), (0, 0), (0, MAX_RECORDS_PAGE + 1)])
def test_a_page_out_of_bounds_is_refused(store: Store, offset: int, limit: int) -> None:
    repo = InvestigationRepo(store)
    investigation = repo.create("http://127.0.0.1:9/p", {}, "t")
    with pytest.raises(ValueError, match="limit 1 to 5000"):
        repo.records_page(investigation, offset, limit)


def test_no_such_investigation(store: Store) -> None:
    with pytest.raises(NotFound, match="no investigation 42"):
        InvestigationRepo(store).records_page(42)


def test_the_list_reads_a_brief_of_each_result(store: Store) -> None:
    repo = InvestigationRepo(store)
    found = repo.create("http://127.0.0.1:9/a", {}, "t")
    repo.save(
        found,
        state="done",
        result={
            "summary": "incident (high): prediction_drift from window 1",
            "incident": True,
            "severity": "high",
            "root_cause": {"id": "confidence_collapse", "title": "Confidence collapse"},
            "findings": [{"kind": "prediction_drift"}] * 3,
            "windows": [{"signals": {"score_mean": 0.3}}] * 5,
        },
    )
    quiet = repo.create("http://127.0.0.1:9/b", {}, "t")
    repo.save(
        quiet,
        state="done",
        result={"summary": "no incident", "incident": False, "root_cause": None, "findings": []},
    )
    waiting = repo.create("http://127.0.0.1:9/c", {}, "t")
    rows = {row["id"]: row for row in repo.list()}
    assert "result" not in rows[found] and "records" not in rows[found]
    assert rows[found]["brief"] == {
        "summary": "incident (high): prediction_drift from window 1",
        "incident": True,
        "severity": "high",
        "root_cause": "Confidence collapse",
        "findings": 3,
    }
    assert rows[quiet]["brief"] == {
        "summary": "no incident",
        "incident": False,
        "severity": None,
        "root_cause": None,
        "findings": 0,
    }
    assert rows[waiting]["brief"] == dict.fromkeys(
        ("summary", "incident", "severity", "root_cause", "findings")
    )
    assert [row["id"] for row in repo.list()] == [waiting, quiet, found]
