"""Sync job counts."""

from __future__ import annotations

from domain.jobs import Counts
from domain.plan import Outcome


def test_counts_add_one_per_outcome() -> None:
    counts = Counts()
    for outcome in Outcome:
        counts.add(outcome)
    counts.add(Outcome.MODIFIED, 4)
    assert counts.modified == 5
    assert counts.inserted == 1
    assert counts.total == len(Outcome) + 4


def test_counts_merge_sums_every_count() -> None:
    first, second = Counts(inserted=1, failed=2), Counts(inserted=3, coupled=1)
    first.merge(second)
    assert first.as_dict() == {
        "inserted": 4,
        "modified": 0,
        "deleted": 0,
        "unchanged": 0,
        "skipped": 0,
        "failed": 2,
        "coupled": 1,
        "uncoupled": 0,
    }


def test_counts_read_as_the_nonzero_counts() -> None:
    assert str(Counts(inserted=2, failed=1)) == "2 inserted, 1 failed"
    assert str(Counts()) == "nothing to do"
