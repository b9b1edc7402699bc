"""Completeness rules shared by every source: pure functions of a listing and a clock."""

from __future__ import annotations

from datetime import timedelta

from syncd.sources import Listing, RemoteFile, Waiting
from syncd.sources.base import Entry, classify, format_seconds, join, numbered_name

NOW = 1_800_000_000.0
OLD = NOW - 3600


def run(entries: list[Entry], *, pattern: str = "settlements_*", min_age: float = 60, marker: bool = False) -> Listing:
    return classify(entries, pattern=pattern, min_age=timedelta(seconds=min_age), require_marker=marker, now=NOW)


def test_pattern_selects_and_ready_files_are_sorted() -> None:
    listing = run(
        [
            Entry("settlements_2.xml", 20, OLD),
            Entry("other.xml", 5, OLD),
            Entry("settlements_1.xml", 10, OLD),
            Entry("Settlements_3.xml", 5, OLD),  # the pattern is case-sensitive
        ]
    )
    assert listing.ready == [RemoteFile("settlements_1.xml", 10, OLD), RemoteFile("settlements_2.xml", 20, OLD)]
    assert listing.waiting == []


def test_temporary_names_markers_and_non_files_are_never_exports() -> None:
    listing = run(
        [
            Entry("settlements_1.xml.tmp", 1, OLD),
            Entry("settlements_1.xml.part", 1, OLD),
            Entry("settlements_1.xml.done", 0, OLD),
            Entry(".settlements_1.xml.Xa3f", 1, OLD),
            Entry("settlements_dir", 0, OLD, is_file=False),
        ],
        pattern="*",
    )
    assert listing.ready == [] and listing.waiting == []


def test_recent_file_waits_with_its_age() -> None:
    listing = run([Entry("settlements_1.xml", 10, NOW - 12)], min_age=60)
    assert listing.ready == []
    assert listing.waiting == [
        Waiting("settlements_1.xml", "still being written: modified 12s ago, waiting for min_age=1m")
    ]


def test_age_exactly_min_age_is_ready_and_zero_min_age_takes_everything() -> None:
    assert run([Entry("settlements_1.xml", 1, NOW - 60)], min_age=60).ready
    assert run([Entry("settlements_1.xml", 1, NOW)], min_age=0).ready


def test_file_from_the_future_waits_and_says_why() -> None:
    (w,) = run([Entry("settlements_1.xml", 1, NOW + 300)]).waiting
    assert "5m in the future" in w.reason and "clock" in w.reason


def test_marker_required() -> None:
    entries = [
        Entry("settlements_1.xml", 1, OLD),
        Entry("settlements_1.xml.done", 0, OLD),
        Entry("settlements_2.xml", 1, OLD),
    ]
    listing = run(entries, marker=True)
    assert [f.name for f in listing.ready] == ["settlements_1.xml"]
    assert listing.waiting == [Waiting("settlements_2.xml", "no settlements_2.xml.done marker yet")]
    # Without the requirement a missing marker does not matter.
    assert len(run(entries).ready) == 2


def test_a_directory_named_like_a_marker_is_no_marker() -> None:
    listing = run(
        [Entry("settlements_1.xml", 1, OLD), Entry("settlements_1.xml.done", 0, OLD, is_file=False)], marker=True
    )
    assert listing.ready == [] and len(listing.waiting) == 1


def test_recent_file_waits_for_age_before_marker() -> None:
    (w,) = run([Entry("settlements_1.xml", 1, NOW - 1)], marker=True).waiting
    assert w.reason.startswith("still being written")


def test_numbered_name_keeps_extensions() -> None:
    assert numbered_name("a.xml.gz", 0) == "a.xml.gz"
    assert numbered_name("a.xml.gz", 2) == "a.2.xml.gz"
    assert numbered_name("noext", 1) == "noext.1"


def test_format_seconds() -> None:
    assert [format_seconds(s) for s in (0, 45, 60, 90, 300, 7200, 0.4)] == ["0s", "45s", "1m", "90s", "5m", "2h", "0s"]


def test_join() -> None:
    assert join(".", "a") == "a"
    assert join("/srv/in/", "processed", "a") == "/srv/in/processed/a"
