"""100k ↔ 100k on PostgreSQL: match-based coupling, then a full synchronization that creates 100k records.

Long: skipped unless TANDEM_SPEED_TESTS=1. Run it with -s to read the rates:

    TANDEM_SPEED_TESTS=1 .venv/bin/pytest tests/integration/test_match_speed.py -s

No timing is asserted (machines differ, and a benchmark may be running beside it); the counts are.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from domain.jobs import Counts
from tests.factories import World, build_world, databases
from workers.usecases import fullsync
from workers.usecases.match import match

N = 100_000
CHUNK = 10_000

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.skipif(
        os.environ.get("TANDEM_SPEED_TESTS") != "1", reason="long: set TANDEM_SPEED_TESTS=1 to run it"
    ),
]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with databases("postgres", tmp_path) as urls:
        made = build_world(urls, match=True)
        try:
            yield made
        finally:
            made.close()


def report(what: str, rows: int, seconds: float, unit: str) -> None:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"\npostgres: {what}: {rows:,} in {seconds:.1f} s = {rows / seconds:,.0f} {unit} "
        f"(peak memory {peak:,.0f} MB)",
        flush=True,
    )


def bulk_customers(world: World, **values: object) -> list[str]:
    keys = [f"K{i:06d}" for i in range(N)]
    for start in range(0, N, CHUNK):
        rows = [
            {"no": k, "name": f"Customer {k}", "phone": f"+45 {i:08d}", "city": "Aarhus", **values}
            for i, k in enumerate(keys[start : start + CHUNK], start)
        ]
        world.insert("erp", "customer", rows)  # one executemany per chunk
    return keys


def test_match_100k_customers_against_100k_accounts(world: World) -> None:
    keys = bulk_customers(world)
    for start in range(0, N, CHUNK):
        rows = [
            {"accountid": f"00000000-0000-0000-0000-{i:012d}", "name": f"CUSTOMER {k}"}  # other case
            for i, k in enumerate(keys[start : start + CHUNK], start)
        ]
        world.insert("crm", "account", rows)
    seen: list[tuple[int, int]] = []

    started = time.perf_counter()
    found = match(world.rt, "CUSTOMER", "erp", progress=lambda done, total: seen.append((done, total)))
    report("match 100k ↔ 100k", N, time.perf_counter() - started, "records/s")

    assert len(found.matched) == N
    assert (found.unmatched, found.ambiguous) == ([], [])
    assert found.counts == Counts(coupled=N)
    assert world.rt.store.count_couplings("CUSTOMER") == N
    assert seen[-1][0] == N and len(seen) == N // 1000  # the progress bar moved page by page
    assert world.counterpart("CUSTOMER", "erp", keys[-1]) == f"00000000-0000-0000-0000-{N - 1:012d}"


def test_fullsync_creates_100k_records(world: World) -> None:
    bulk_customers(world)
    (review,) = fullsync.review(world.rt, ["CUSTOMER"])
    assert (review.action, review.uncoupled) == (fullsync.FULL, {"erp": N, "crm": 0})
    seen: list[tuple[str, int, int]] = []

    started = time.perf_counter()
    (outcome,) = fullsync.run(world.rt, ["CUSTOMER"], progress=lambda *p: seen.append(p))
    report("fullsync creates 100k", N, time.perf_counter() - started, "rows/s")

    assert outcome.counts == Counts(inserted=N)
    assert world.count("crm", "account") == N
    assert world.rt.store.count_couplings("CUSTOMER") == N
    assert seen[-1] == ("CUSTOMER: create from erp", N, N)
    (after,) = fullsync.review(world.rt, ["CUSTOMER"])
    assert after.action == fullsync.NOTHING
