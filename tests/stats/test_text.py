"""The text feature type on the bundled Titanic names: which columns the rule calls text, how a
text value is validated (gateway and bulk ingest), how a text column is summarised and merged,
and which faults the text checks find (issue 15)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from empty_sqlite import migrated_sqlite
from mlwarden.capture.ingest import ingest_records
from mlwarden.capture.validation import validate_instance
from mlwarden.datasets import load
from mlwarden.detect.quality import QualityDetector
from mlwarden.detect.text_drift import TextDriftDetector
from mlwarden.domain import FeatureSpec, FeatureType, ModelSpec, Task
from mlwarden.errors import InvalidInput
from mlwarden.monitor.lake import profile_lake
from mlwarden.stats.profile import Profile, _infer_type
from mlwarden.stats.text import TextStats
from mlwarden.store import Store

TITANIC = load("titanic")
SPEC = ModelSpec(
    name="names",
    task=Task.CLASSIFICATION,
    features=[
        FeatureSpec(name="Name", type=FeatureType.TEXT, max_length=60),
        FeatureSpec(name="Sex", type=FeatureType.CATEGORICAL),
    ],
)


def _split(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows = TITANIC[["Name", "Sex"]].sample(frac=1.0, random_state=seed).reset_index(drop=True)
    return rows.iloc[:600], rows.iloc[600:]


def test_the_rule_calls_names_text_and_short_codes_categories() -> None:
    types = {c: _infer_type(TITANIC[c]).value for c in ("Name", "Sex", "Embarked", "Ticket")}
    assert types == {"Name": "text", "Sex": "categorical", "Embarked": "categorical",
                     "Ticket": "categorical"}  # fmt: skip
    # a resampled reference repeats its 891 names: still text (more than 500 distinct values)
    resampled = pd.Series(np.random.default_rng(0).choice(TITANIC["Name"], 4000))
    assert _infer_type(resampled) is FeatureType.TEXT
    # a declared type wins over the rule
    declared = Profile.reference(TITANIC[["Name"]], SPEC.model_copy(update={"features": [
        FeatureSpec(name="Name", type=FeatureType.CATEGORICAL)]}))  # fmt: skip
    assert not isinstance(declared.features["Name"], TextStats)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (42, "text (a string)"),
        ({"first": "Owen"}, "text (a string)"),
        (True, "text (a string)"),
        ("x" * 61, "text of at most 60 characters (received 61)"),
    ],
)
def test_a_text_value_must_be_a_string_of_bounded_length(value: object, expected: str) -> None:
    errors = validate_instance(SPEC, {"Name": value, "Sex": "male"})
    assert [(e.field, e.expected) for e in errors] == [("Name", expected)]
    assert "feature 'Name'" in errors[0].message


def test_null_and_empty_text_are_valid() -> None:
    assert validate_instance(SPEC, {"Name": None, "Sex": "male"}) == []
    assert validate_instance(SPEC, {"Name": "", "Sex": "male"}) == []


def test_bulk_ingest_refuses_numbers_and_long_text_and_keeps_the_rest(tmp_path: Path) -> None:
    with Store(migrated_sqlite(tmp_path / "db.sqlite")) as store:
        store.create_model(SPEC)
        csv = 'id,Name,Sex\na,"Braund, Mr. Owen Harris",male\nb,' + "y" * 61 + ",female\n"
        with pytest.raises(InvalidInput) as refused:
            ingest_records(store, "names", csv.encode(), "csv")
        assert "longer than 60 characters" in str(refused.value)
        assert store.count_records("names") == 0  # all or nothing without partial
        lines = [
            {"id": "c", "Name": "Heikkinen, Miss. Laina", "Sex": "female"},
            {"id": "d", "Name": 7, "Sex": "male"},
        ]
        body = "\n".join(json.dumps(line) for line in lines).encode()
        report = ingest_records(store, "names", body, "jsonl", partial=True)
        assert report.stored == 1 and "text (a string)" in json.dumps(report.as_dict())
        report = ingest_records(store, "names", csv.encode(), "csv", partial=True)
        assert report.stored == 1 and store.count_records("names") == 2


def test_a_text_summary_merges_exactly_and_survives_storage() -> None:
    reference, window = _split()
    ref = Profile.reference(reference, SPEC)
    whole = Profile.from_data(window, ref.layout)
    parts = Profile.from_data(window.iloc[:100], ref.layout).merge(
        Profile.from_data(window.iloc[100:], ref.layout)
    )
    assert parts.features["Name"].to_dict() == whole.features["Name"].to_dict()
    stored = Profile.from_dict(whole.to_dict())
    assert stored.features["Name"].to_dict() == whole.features["Name"].to_dict()
    names = whole.features["Name"]
    assert isinstance(names, TextStats)
    assert names.count == len(window) and names.tokens > 3 * len(window)
    assert 20 < names.mean_length < 35 and names.top_shares(1)[0][0] == "mr"


def test_held_out_names_are_quiet_and_each_fault_is_found_by_its_check() -> None:
    reference, window = _split()
    ref = Profile.reference(reference, SPEC)
    detectors = [TextDriftDetector(), QualityDetector(SPEC)]

    def checks(frame: pd.DataFrame) -> set[str]:
        profile = Profile.from_data(frame, ref.layout)
        found = [f for d in detectors for f in d.detect(ref, profile, window_index=1)]
        return {str(f.evidence["check"]) for f in found if f.features == ["Name"]}

    # the reference's out-of-sample OOV rate is what new passengers show
    assert checks(window) == set()
    blank = window.assign(Name=np.where(np.arange(len(window)) % 3 == 0, "", window["Name"]))
    assert {"empty_burst"} <= checks(blank)
    nulls = window.assign(Name=np.where(np.arange(len(window)) % 3 == 0, None, window["Name"]))
    assert "null_burst" in checks(nulls)
    # upper-cased garbage: random capitals, as long as names
    rng = np.random.default_rng(0)
    letters = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    garbage = [" ".join("".join(rng.choice(letters, 6)) for _ in range(4)) for _ in window.index]
    assert "text_oov" in checks(window.assign(Name=garbage))
    # names cut to their surname: shorter, and the titles gone from the mix of words
    cut = window.assign(Name=window["Name"].str.split(",").str[0])
    assert {"text_length", "text_tokens"} <= checks(cut)
    # an all-"Mrs." window: the same words, another mix
    wives = reference[reference["Name"].str.contains("Mrs.", regex=False)]
    assert "text_tokens" in checks(pd.concat([wives] * 2).iloc[: len(window)])


def test_a_lake_reference_counts_its_unknown_words_out_of_sample(tmp_path: Path) -> None:
    """A lake's reference is summarised on every record but its layout on the first ones: the
    unknown-word rate is still measured on rows the vocabulary was not learnt from."""
    reference, window = _split()
    lake = tmp_path / "reference.parquet"
    reference[["Name"]].to_parquet(lake)
    ref = profile_lake(str(lake), layout_rows=300)
    names = ref.features["Name"]
    assert isinstance(names, TextStats) and names.count == len(reference)
    held_out = Profile.reference(reference.iloc[:300][["Name"]]).features["Name"]
    assert isinstance(held_out, TextStats)
    assert names.oov_rate == held_out.oov_rate > 0.3
    assert TextDriftDetector().detect(ref, Profile.from_data(window[["Name"]], ref.layout)) == []
