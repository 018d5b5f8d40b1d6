from __future__ import annotations

import pytest

from mlpack.exceptions import InvalidTag
from mlpack.tag import VERSION_LENGTH, Tag, UppercaseTagWarning, new_version, version_time


def test_parse_name_and_version() -> None:
    assert Tag.parse("iris_clf:abc123") == Tag("iris_clf", "abc123")
    assert Tag.parse("iris_clf") == Tag("iris_clf", None)
    assert Tag.parse("iris-clf.v2:latest").is_latest
    assert str(Tag("a", "b")) == "a:b"


def test_uppercase_is_lowered_with_a_warning() -> None:
    with pytest.warns(UppercaseTagWarning):
        tag = Tag.parse("IrisClassifier:latest")
    assert tag == Tag("irisclassifier", "latest")


@pytest.mark.parametrize(
    "bad",
    ["", ":", "a:", ":v", "a..b", "../etc", "a/b", "a b", "a:b:c", "-a", "a-", "a:../x", "x" * 64, "a:" + "v" * 64, "é"],
)
def test_invalid_tags_are_refused(bad: str) -> None:
    with pytest.raises(InvalidTag):
        Tag.parse(bad)


def test_max_length_is_accepted() -> None:
    assert Tag.parse("x" * 63).name == "x" * 63


def test_versions_are_16_base32_chars_sorting_by_time() -> None:
    t0 = 1_700_000_000_000_000_000
    versions = [new_version(t0 + i * 1000) for i in range(200)]  # one microsecond apart
    assert all(len(v) == VERSION_LENGTH == 16 for v in versions)
    assert all(set(v) <= set("0123456789abcdefghjkmnpqrstvwxyz") for v in versions)
    assert versions == sorted(versions)
    assert abs(version_time(versions[0]) - t0 / 1e9) < 1e-5


def test_versions_are_unique_in_a_tight_loop() -> None:
    versions = [new_version() for _ in range(20_000)]
    assert len(set(versions)) == len(versions)
