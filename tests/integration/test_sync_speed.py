"""How fast the batch runs: 10k records created and coupled, then 10k edited records synced (run with -s).

No timing is asserted (machines differ); the counts are. The rates are printed for people to read.
"""

from __future__ import annotations

import time

import pytest

from domain.jobs import Counts
from tests.factories import World, later
from workers.usecases.couple import create_and_couple
from workers.usecases.sync import sync
from workers.usecases.verify import verify

N = 10_000


def report(backend: str, what: str, rows: int, seconds: float) -> None:
    print(
        f"\n{backend}: {what}: {rows} records in {seconds:.2f} s = {rows / seconds:,.0f} rows/s", flush=True
    )


@pytest.mark.slow
def test_ten_thousand_records_create_and_couple_then_sync(world: World) -> None:
    backend = world.rt.store.engine.dialect.name
    keys = [f"K{i:06d}" for i in range(N)]
    world.insert(
        "erp",
        "customer",
        [
            {"no": k, "name": f"Customer {k}", "phone": f"+45 {i:08d}", "city": "Aarhus", "credit": i}
            for i, k in enumerate(keys)
        ],
    )

    started = time.perf_counter()
    created = create_and_couple(world.rt, "CUSTOMER", "erp", keys)
    report(backend, "create and couple", N, time.perf_counter() - started)

    assert created.counts == Counts(inserted=N)
    assert world.count("crm", "account") == N
    assert world.rt.store.count_couplings("CUSTOMER") == N

    assert world.edit_all("erp", "customer", at=later(1), city="Odense") == N
    started = time.perf_counter()
    synced = sync(world.rt, "CUSTOMER", "erp", keys)
    report(backend, "sync after editing every record", N, time.perf_counter() - started)

    assert synced.counts == Counts(modified=N)
    assert {r["city"] for r in world.rows("crm", "account")} == {"Odense"}
    final = verify(world.rt, ["CUSTOMER"])
    assert (final.pairs, final.mismatches, final.open_errors) == (N, [], 0)
