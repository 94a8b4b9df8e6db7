"""The one check between a name and a path: every escape is refused, plain names pass."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlwarden.errors import InvalidInput
from mlwarden.paths import MAX_NAME_LENGTH, check_name, inside, inside_relative


@pytest.mark.parametrize(
    ("name", "fault"),
    [
        ("..", "is a relative directory"),
        (".", "is a relative directory"),
        ("../../x", "contains a path separator ('/')"),
        ("a/../../b", "contains a path separator ('/')"),
        ("/etc/passwd", "is an absolute path"),
        ("\\\\server\\share", "is an absolute path"),
        ("..\\..\\x", "contains a path separator ('\\\\')"),
        ("C:\\Windows", "contains a path separator ('\\\\')"),
        ("C:", "contains ':' (a drive letter or stream name)"),
        ("c:x", "contains ':' (a drive letter or stream name)"),
        ("data.csv:stream", "contains ':'"),
        ("evil\x00.csv", "contains a NUL byte"),
        ("", "is empty"),
        ("   ", "is empty"),
        ("x" * (MAX_NAME_LENGTH + 1), f"at most {MAX_NAME_LENGTH} are allowed"),
        (".hidden", "has a character outside"),
        ("-rf", "has a character outside"),
        ("two words", "has a character outside"),
        ("tab\tname", "has a character outside"),
        ("caf\u00e9", "has a character outside"),
        ("\u2025", "has a character outside"),  # a one-character "two dots" look-alike
        ("a\uff0fb", "has a character outside"),  # a fullwidth solidus
    ],
)
def test_unsafe_names_are_refused_saying_why(name: str, fault: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="dataset name") as refused:
        check_name(name, "dataset name")
    assert fault in refused.value.message
    with pytest.raises(InvalidInput):
        inside(tmp_path, "datasets", name)
    assert list(tmp_path.iterdir()) == []  # checking creates nothing


@pytest.mark.parametrize(
    "name", ["titanic", "Titanic-2", "sales_2026.v3", "a", "x" * MAX_NAME_LENGTH]
)
def test_plain_names_pass_and_stay_inside(name: str, tmp_path: Path) -> None:
    assert check_name(name) == name
    path = inside(tmp_path, "datasets", name, "v1.parquet")
    assert path == tmp_path.resolve() / "datasets" / name / "v1.parquet"


def test_non_text_and_missing_parts_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="is empty"):
        check_name(None)
    with pytest.raises(InvalidInput, match="is empty"):
        inside(tmp_path)


def test_a_symlink_that_leaves_the_directory_is_refused(tmp_path: Path) -> None:
    base = tmp_path / "data"
    outside = tmp_path / "elsewhere"
    (base / "datasets").mkdir(parents=True)
    outside.mkdir()
    os.symlink(outside, base / "datasets" / "escape")
    with pytest.raises(InvalidInput, match="leads outside the data directory"):
        inside(base, "datasets", "escape", "v1.parquet")
    # a symlink that stays inside is only another name for a place inside
    (base / "datasets" / "real").mkdir()
    os.symlink(base / "datasets" / "real", base / "datasets" / "alias")
    assert inside(base, "datasets", "alias") == (base / "datasets" / "real").resolve()


def test_a_symlinked_base_directory_is_followed_once(tmp_path: Path) -> None:
    real = tmp_path / "real-data"
    real.mkdir()
    os.symlink(real, tmp_path / "data")
    assert inside(tmp_path / "data", "datasets") == real.resolve() / "datasets"


@pytest.mark.parametrize(
    ("relative", "fault"),
    [
        ("/etc/passwd", "is absolute"),
        ("datasets/../../secret.parquet", "is a relative directory"),
        ("datasets\\..\\secret", "not a relative path of plain names"),
        ("datasets/x\x00/v1.parquet", "not a relative path of plain names"),
        ("", "is empty"),
    ],
)
def test_stored_relative_paths_are_checked_part_by_part(
    relative: str, fault: str, tmp_path: Path
) -> None:
    with pytest.raises(InvalidInput) as refused:
        inside_relative(tmp_path, relative)
    assert fault in refused.value.message


@pytest.mark.parametrize("name", ["titanic", "my data", "caf\u00e9 (2)", ".hidden"])
def test_a_stored_path_that_stays_inside_resolves(name: str, tmp_path: Path) -> None:
    # names stored by older versions were not held to the allow-list; their files still open
    assert inside_relative(tmp_path, f"datasets/{name}/v2.parquet") == (
        tmp_path.resolve() / "datasets" / name / "v2.parquet"
    )
    with pytest.raises(InvalidInput, match="has a character outside"):
        inside(tmp_path, "datasets", "my data")
