"""The coupling store on SQLite and PostgreSQL: migrations, couplings, batches, errors, jobs and locks.

Every test gets a fresh, empty database from the `store_url` fixture.
"""

from __future__ import annotations

import datetime as dt
import functools
import multiprocessing
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command as alembic_command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from adapters.store import migrate, tables
from adapters.store.locks import AdvisoryLocks, FileLocks, lock_id
from adapters.store.store import AlreadyCoupled, BatchWrite, ErrorReport, Store, StoreError, subject_of
from domain.coupling import Coupling, CouplingStatus
from domain.jobs import Counts
from domain.mapping import FieldMapping, TableMapping, TableSide

CRM, ERP = "crm", "erp"  # systems[0] is crm (a_key), systems[1] is erp (b_key)


def table_mapping(name: str = "CUSTOMER") -> TableMapping:
    both = frozenset({CRM, ERP})
    return TableMapping(
        name=name,
        sides=(TableSide(CRM, "account", "accountid"), TableSide(ERP, "customer", "no")),
        sources=both,
        fields=(FieldMapping("name", {CRM: "name", ERP: "name"}, both),),
    )


MAPPING = table_mapping()
OTHER = table_mapping("CONTACT")


def coupling(crm: str | None, erp: str | None, **options: Any) -> Coupling:
    return Coupling(MAPPING.name, {CRM: crm, ERP: erp}, **options)


def report(subject: str, *, occurrences: int = 1, message: str = "refused", **options: Any) -> ErrorReport:
    values: dict[str, Any] = {
        "coupling_id": None,
        "system": ERP,
        "record_key": "E1",
        "keys": {CRM: None, ERP: "E1"},
        "kind": "rejected",
        "message": message,
        "detail": {"column": "name", "values": [1, "ü"]},
        "occurrences": occurrences,
        "skipped": False,
    }
    values.update(options)
    return ErrorReport(subject=subject, **values)


def wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    """Polls an observable condition (not a sleep standing in for one)."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        pause.wait(0.01)


def as_utc(moment: dt.datetime) -> dt.datetime:
    """SQLite hands timestamps back without their zone (they are stored in UTC)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    made = Store(store_url)
    yield made
    made.close()


def insert(store: Store, *couplings: Coupling, mapping: TableMapping = MAPPING) -> list[Coupling]:
    store.commit(mapping, BatchWrite(None, inserted=list(couplings)))
    assert all(c.id is not None for c in couplings)
    return list(couplings)


# --- migrations -----------------------------------------------------------------------------------


def test_migrations_apply_on_an_empty_database_and_only_once(store_url, monkeypatch):
    engine = sa.create_engine(store_url)
    try:
        assert migrate.current(engine) is None
        assert sa.inspect(engine).get_table_names() == []
    finally:
        engine.dispose()

    first = Store(store_url)
    try:
        assert migrate.current(first.engine) == migrate.head()
        assert set(tables.metadata.tables) <= set(sa.inspect(first.engine).get_table_names())
        insert(first, coupling("C1", "E1"))
        assert migrate.upgrade(first.engine) is False
    finally:
        first.close()

    applied: list[object] = []
    real_upgrade = alembic_command.upgrade

    def watched(*args: Any, **options: Any) -> None:
        applied.append(args)
        real_upgrade(*args, **options)

    monkeypatch.setattr(alembic_command, "upgrade", watched)
    second = Store(store_url)
    try:
        assert applied == []
        assert second.count_couplings() == 1
        with second.engine.connect() as connection:
            assert connection.execute(sa.text("SELECT count(*) FROM alembic_version")).scalar_one() == 1
    finally:
        second.close()


def test_a_store_without_upgrade_leaves_the_database_alone(store_url):
    untouched = Store(store_url, upgrade=False)
    try:
        assert migrate.current(untouched.engine) is None
    finally:
        untouched.close()


def test_the_migrated_schema_matches_the_table_definitions(store):
    with store.engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": True}
        )
        differences = compare_metadata(context, tables.metadata)
    assert differences == []


def test_migrations_go_down_and_up_again(store):
    migrate.downgrade(store.engine, "base")
    assert migrate.current(store.engine) is None
    assert not set(tables.metadata.tables) & set(sa.inspect(store.engine).get_table_names())
    assert migrate.upgrade(store.engine) is True
    assert migrate.current(store.engine) == migrate.head()


def _start_store(url: str, barrier: Any, results: Any) -> None:
    barrier.wait()
    try:
        Store(url).close()
        results.put("ok")
    except Exception as exc:
        results.put(repr(exc))


@pytest.mark.slow
def test_processes_starting_together_migrate_once(store_url):
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(3), context.Queue()
    processes = [context.Process(target=_start_store, args=(store_url, barrier, results)) for _ in range(3)]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    assert outcomes == ["ok"] * 3
    engine = sa.create_engine(store_url)
    try:
        assert migrate.current(engine) == migrate.head()
    finally:
        engine.dispose()


def test_threads_starting_together_migrate_once(store_url):
    barrier = threading.Barrier(4)
    failures: list[BaseException] = []

    def start() -> None:
        barrier.wait()
        try:
            Store(store_url).close()
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert failures == []
    check = Store(store_url, upgrade=False)
    try:
        assert migrate.current(check.engine) == migrate.head()
    finally:
        check.close()


def test_the_store_refuses_other_databases():
    with pytest.raises(StoreError, match="SQLite or PostgreSQL, not mysql"):
        Store("mysql+pymysql://root@127.0.0.1:1/none")


# --- couplings ------------------------------------------------------------------------------------


def test_couplings_are_found_by_either_side_and_by_id(store):
    base = {CRM: {"name": "Ünïcode ‘quoted’", "n": 1.5, "flag": True, "none": None}, ERP: {"name": "x"}}
    first, second = insert(
        store,
        coupling(
            "C1", "E1", base=base, versions={CRM: "2024-01-01T00:00:00", ERP: 7}, status=CouplingStatus.SYNCED
        ),
        coupling("C2", "E2"),
    )

    by_crm = store.couplings(MAPPING, CRM, ["C1", "C2", "C3"])
    by_erp = store.couplings(MAPPING, ERP, ["E2", "E1", "C1"])

    assert set(by_crm) == {"C1", "C2"}
    assert set(by_erp) == {"E1", "E2"}
    found = by_erp["E1"]
    assert (found.id, found.keys, found.base, found.versions) == (
        first.id,
        {CRM: "C1", ERP: "E1"},
        base,
        {CRM: "2024-01-01T00:00:00", ERP: 7},
    )
    assert found.status is CouplingStatus.SYNCED
    assert (found.failures, found.skipped, found.last_error, found.mapping) == (0, False, None, MAPPING.name)
    assert by_crm["C2"].base is None
    assert by_crm["C2"].versions == {}
    assert by_crm["C2"].status is CouplingStatus.COUPLED
    assert first.id is not None and second.id is not None
    assert set(store.couplings_by_id(MAPPING, [first.id, second.id, 10**9])) == {first.id, second.id}
    assert store.couplings(MAPPING, CRM, []) == {}
    assert store.couplings(OTHER, CRM, ["C1"]) == {}


def test_couplings_of_many_keys_are_read_in_chunks(store):
    insert(store, *(coupling(f"C{i}", f"E{i}") for i in range(1200)))
    found = store.couplings(MAPPING, ERP, [f"E{i}" for i in range(0, 1300)])
    assert len(found) == 1200
    assert found["E1199"].keys[CRM] == "C1199"


def test_translate_gives_the_counterpart_keys_of_coupled_records(store):
    insert(store, coupling("C1", "E1"), coupling("C2", "E2"))
    store.insert_pending(MAPPING, CRM, ["C3"], None)
    assert store.translate(MAPPING, CRM, ["C1", "C2", "C3", "C4"]) == {"C1": "E1", "C2": "E2"}
    assert store.translate(MAPPING, ERP, ["E2", "E9"]) == {"E2": "C2"}


def test_list_and_count_couplings(store):
    insert(
        store, coupling("C1", "E1"), coupling("C2", "E2", status=CouplingStatus.SYNCED), coupling("C3", "E3")
    )
    insert(store, Coupling(OTHER.name, {CRM: "C1", ERP: "E1"}), mapping=OTHER)

    listed = store.list_couplings(MAPPING)
    assert [c.keys[CRM] for c in listed] == ["C1", "C2", "C3"]
    assert [c.keys[CRM] for c in store.list_couplings(MAPPING, status="coupled")] == ["C1", "C3"]
    assert [c.keys[CRM] for c in store.list_couplings(MAPPING, limit=1, offset=1)] == ["C2"]
    assert store.count_couplings(MAPPING.name) == 3
    assert store.count_couplings(OTHER.name) == 1
    assert store.count_couplings() == 4
    assert store.count_couplings("NOTHING") == 0


@pytest.mark.parametrize("system", [CRM, ERP])
def test_a_record_is_coupled_at_most_once_per_mapping(store, system):
    insert(store, coupling("C1", "E1"))
    job = store.start_job(MAPPING.name, "sync", "both", "test")
    clash = coupling("C1", "E2") if system == CRM else coupling("C2", "E1")

    with pytest.raises(AlreadyCoupled, match=f"a record of {MAPPING.name} is coupled already"):
        store.commit(MAPPING, BatchWrite(job, Counts(coupled=1), inserted=[coupling("C7", "E7"), clash]))

    # nothing of the failed batch was written
    assert store.count_couplings(MAPPING.name) == 1
    assert store.jobs(ids=[job])[0].counts == Counts()
    # the same keys in another mapping are a different coupling
    insert(store, Coupling(OTHER.name, dict(clash.keys)), mapping=OTHER)
    assert store.count_couplings(OTHER.name) == 1


def test_pending_couplings_await_their_counterpart(store):
    job = store.start_job(MAPPING.name, "sync", "crm->erp", "test")
    ids = store.insert_pending(MAPPING, CRM, ["C1", "C2", "C3"], job)

    assert len(set(ids)) == 3
    pending = store.couplings(MAPPING, CRM, ["C1", "C2", "C3"])
    assert [pending[k].id for k in ("C1", "C2", "C3")] == ids
    assert all(c.status is CouplingStatus.PENDING and c.keys[ERP] is None for c in pending.values())
    assert store.insert_pending(MAPPING, CRM, [], job) == []
    with pytest.raises(AlreadyCoupled):
        store.insert_pending(MAPPING, CRM, ["C4", "C2"], job)
    assert store.count_couplings(MAPPING.name) == 3

    done = coupling(
        "C1",
        "E1",
        base={CRM: {"name": "a"}, ERP: {"name": "a"}},
        versions={ERP: 1},
        status=CouplingStatus.SYNCED,
    )
    done.id = ids[0]
    store.commit(MAPPING, BatchWrite(job, Counts(inserted=1), changed=[done]))

    completed = store.couplings(MAPPING, ERP, ["E1"])["E1"]
    assert (completed.id, completed.keys, completed.status) == (
        ids[0],
        {CRM: "C1", ERP: "E1"},
        CouplingStatus.SYNCED,
    )
    assert completed.base == {CRM: {"name": "a"}, ERP: {"name": "a"}}
    assert store.couplings(MAPPING, CRM, ["C2"])["C2"].status is CouplingStatus.PENDING
    assert store.jobs(ids=[job])[0].counts == Counts(inserted=1)


def _synced_at(store: Store, coupling_id: int | None) -> dt.datetime | None:
    with store.engine.connect() as connection:
        query = sa.select(tables.coupling.c.synced_at).where(tables.coupling.c.id == coupling_id)
        synced: dt.datetime | None = connection.execute(query).scalar_one()
    return synced


def test_a_failed_sync_keeps_the_time_of_the_last_successful_one(store):
    (pair,) = insert(store, coupling("C1", "E1", status=CouplingStatus.SYNCED))
    synced = _synced_at(store, pair.id)
    assert synced is not None
    pair.status, pair.failures, pair.last_error = CouplingStatus.FAILED, 1, "boom"
    store.commit(MAPPING, BatchWrite(None, changed=[pair]))
    assert _synced_at(store, pair.id) == synced
    again = store.couplings(MAPPING, CRM, ["C1"])["C1"]
    assert (again.status, again.failures, again.last_error) == (CouplingStatus.FAILED, 1, "boom")


# --- batches --------------------------------------------------------------------------------------


def test_a_batch_writes_couplings_errors_resolutions_and_counts_together(store):
    job = store.start_job(MAPPING.name, "sync", "both", "test")
    kept, changed, removed = insert(store, coupling("C1", "E1"), coupling("C2", "E2"), coupling("C3", "E3"))
    assert changed.id is not None and removed.id is not None
    store.commit(MAPPING, BatchWrite(job, errors=[report("record:erp:E9"), report(f"coupling:{kept.id}")]))

    changed.base = {CRM: {"name": "new"}, ERP: {"name": "new"}}
    changed.status = CouplingStatus.SYNCED
    fresh = coupling("C4", "E4", status=CouplingStatus.SYNCED)
    batch = BatchWrite(
        job,
        Counts(inserted=1, modified=1, uncoupled=1, failed=1),
        inserted=[fresh],
        changed=[changed],
        removed=[removed.id],
        errors=[report("record:crm:C9", system=CRM, record_key="C9")],
        resolved=["record:erp:E9"],
    )
    store.commit(MAPPING, batch)
    store.commit(MAPPING, BatchWrite(job, Counts(modified=2, unchanged=5)))

    now_ = {c.keys[CRM]: c for c in store.list_couplings(MAPPING)}
    assert set(now_) == {"C1", "C2", "C4"}
    assert now_["C2"].base == {CRM: {"name": "new"}, ERP: {"name": "new"}}
    assert fresh.id is not None and now_["C4"].id == fresh.id
    open_subjects = {e.subject for e in store.errors(MAPPING.name)}
    assert open_subjects == {f"coupling:{kept.id}", "record:crm:C9"}
    (resolved,) = store.errors(MAPPING.name, state="resolved")
    assert resolved.subject == "record:erp:E9"
    assert resolved.resolved_at is not None
    assert store.jobs(ids=[job])[0].counts == Counts(
        inserted=1, modified=3, unchanged=5, failed=1, uncoupled=1
    )


def test_an_empty_batch_changes_nothing(store):
    job = store.start_job(MAPPING.name, "sync", "both", "test")
    store.commit(MAPPING, BatchWrite(job))
    store.commit(MAPPING, BatchWrite(None, Counts(inserted=3)))  # counts without a job go nowhere
    assert store.count_couplings() == 0
    assert store.jobs(ids=[job])[0].counts == Counts()


def test_a_second_report_for_the_same_subject_updates_the_open_error(store):
    job = store.start_job(MAPPING.name, "sync", "both", "test")
    store.commit(MAPPING, BatchWrite(job, errors=[report("record:erp:E1", occurrences=1, message="first")]))
    (first,) = store.errors(MAPPING.name)

    store.commit(
        MAPPING,
        BatchWrite(job, errors=[report("record:erp:E1", occurrences=2, message="second", skipped=True)]),
    )

    (second,) = store.errors(MAPPING.name)
    assert second.id == first.id
    assert (second.occurrences, second.message, second.skipped, second.state) == (2, "second", True, "open")
    assert second.created_at == first.created_at
    assert as_utc(second.updated_at) >= as_utc(first.updated_at)
    assert second.detail == {"column": "name", "values": [1, "ü"]}
    assert (second.a_key, second.b_key, second.job_id) == (None, "E1", job)
    assert store.count_errors(MAPPING.name) == 1


def test_two_reports_for_one_subject_in_one_batch_leave_one_open_error(store):
    subject = subject_of(None, ERP, "E1")
    batch = BatchWrite(
        None, errors=[report(subject, occurrences=1), report(subject, occurrences=2, message="later")]
    )
    store.commit(MAPPING, batch)
    (only,) = store.errors(MAPPING.name)
    assert (only.subject, only.occurrences, only.message) == ("record:erp:E1", 2, "later")


def test_a_resolved_subject_can_fail_again_as_a_new_error(store):
    store.commit(MAPPING, BatchWrite(None, errors=[report("record:erp:E1")]))
    store.commit(MAPPING, BatchWrite(None, resolved=["record:erp:E1", "record:erp:NOTHING"]))
    assert store.count_errors(MAPPING.name) == 0
    store.commit(MAPPING, BatchWrite(None, errors=[report("record:erp:E1", message="again")]))
    assert [e.message for e in store.errors(MAPPING.name)] == ["again"]
    assert [e.state for e in store.errors(MAPPING.name, state=None)] == ["resolved", "open"]


def test_resolving_is_per_mapping(store):
    store.commit(MAPPING, BatchWrite(None, errors=[report("record:erp:E1")]))
    store.commit(OTHER, BatchWrite(None, errors=[report("record:erp:E1")]))
    store.commit(OTHER, BatchWrite(None, resolved=["record:erp:E1"]))
    assert store.count_errors(MAPPING.name) == 1
    assert store.count_errors(OTHER.name) == 0
    assert store.count_errors() == 1


def test_removing_couplings_resolves_their_open_errors(store):
    gone, stays = insert(store, coupling("C1", "E1"), coupling("C2", "E2"))
    assert gone.id is not None and stays.id is not None
    errors = [
        report(subject_of(gone, CRM, "C1"), coupling_id=gone.id),
        report(subject_of(stays, CRM, "C2"), coupling_id=stays.id),
        report("record:erp:E9"),
    ]
    store.commit(MAPPING, BatchWrite(None, errors=errors))

    store.commit(MAPPING, BatchWrite(None, Counts(uncoupled=1), removed=[gone.id]))

    assert store.couplings_by_id(MAPPING, [gone.id]) == {}
    assert {e.subject for e in store.errors(MAPPING.name)} == {f"coupling:{stays.id}", "record:erp:E9"}
    (resolved,) = store.errors(MAPPING.name, state="resolved")
    assert resolved.coupling_id == gone.id


def test_errors_can_be_filtered_and_dismissed(store):
    store.commit(MAPPING, BatchWrite(None, errors=[report(f"record:erp:E{i}") for i in range(4)]))
    store.commit(OTHER, BatchWrite(None, errors=[report("record:erp:E0")]))
    ids = [e.id for e in store.errors(MAPPING.name)]

    assert len(store.errors()) == 5
    assert [e.id for e in store.errors(MAPPING.name, ids=ids[1:3])] == ids[1:3]
    assert [e.subject for e in store.errors(MAPPING.name, subjects=["record:erp:E3"])] == ["record:erp:E3"]
    assert len(store.errors(MAPPING.name, limit=2)) == 2

    store.resolve_errors(ids[:2], state="dismissed")
    store.resolve_errors([])
    assert store.count_errors(MAPPING.name) == 2
    assert store.count_errors(MAPPING.name, state="dismissed") == 2
    assert all(e.resolved_at is not None for e in store.errors(MAPPING.name, state="dismissed"))


def test_unpark_clears_the_skipped_mark_of_couplings_and_errors(store):
    parked, other = insert(
        store,
        coupling("C1", "E1", status=CouplingStatus.SKIPPED, failures=3, skipped=True, last_error="boom"),
        coupling("C2", "E2", status=CouplingStatus.SKIPPED, failures=3, skipped=True),
    )
    subject = subject_of(parked, CRM, "C1")
    errors = [
        report(subject, coupling_id=parked.id, occurrences=3, skipped=True),
        report(subject_of(other, CRM, "C2"), coupling_id=other.id, occurrences=3, skipped=True),
        report("record:erp:E9", occurrences=3, skipped=True),
    ]
    store.commit(MAPPING, BatchWrite(None, errors=errors))

    store.unpark(MAPPING, [subject, "record:erp:E9"])

    now_ = store.couplings(MAPPING, CRM, ["C1", "C2"])
    assert (now_["C1"].skipped, now_["C1"].failures, now_["C1"].status) == (False, 0, CouplingStatus.FAILED)
    assert (now_["C2"].skipped, now_["C2"].failures, now_["C2"].status) == (True, 3, CouplingStatus.SKIPPED)
    by_subject = {e.subject: e for e in store.errors(MAPPING.name)}
    assert (by_subject[subject].skipped, by_subject[subject].occurrences) == (False, 0)
    assert (by_subject["record:erp:E9"].skipped, by_subject["record:erp:E9"].occurrences) == (False, 0)
    assert by_subject[f"coupling:{other.id}"].skipped is True
    assert all(e.state == "open" for e in by_subject.values())


def test_subjects_name_a_pair_or_an_uncoupled_record():
    assert subject_of(Coupling("M", {}, id=42), ERP, "E1") == "coupling:42"
    assert subject_of(Coupling("M", {}), ERP, "E1") == "record:erp:E1"
    assert subject_of(None, CRM, "a:b") == "record:crm:a:b"


# --- jobs -----------------------------------------------------------------------------------------


def test_jobs_start_finish_and_list_newest_first(store):
    before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    first = store.start_job(MAPPING.name, "sync", "both", "cli")
    second = store.start_job(OTHER.name, "coupling", "couple", "api")
    third = store.start_job(MAPPING.name, "sync", "crm->erp", "event")
    store.finish_job(first)
    store.finish_job(third, "failed", "the ERP is unavailable")

    listed = store.jobs()
    assert [j.id for j in listed] == [third, second, first]
    assert [j.id for j in store.jobs(MAPPING.name)] == [third, first]
    assert [j.id for j in store.jobs(limit=1)] == [third]
    assert [j.id for j in store.jobs(ids=[first, second])] == [second, first]
    done, running, failed = (
        store.jobs(ids=[first])[0],
        store.jobs(ids=[second])[0],
        store.jobs(ids=[third])[0],
    )
    assert (done.status, done.message, done.kind, done.direction, done.trigger) == (
        "finished",
        None,
        "sync",
        "both",
        "cli",
    )
    assert done.finished_at is not None and as_utc(done.finished_at) >= as_utc(done.started_at)
    assert as_utc(done.started_at) >= before
    assert (running.status, running.finished_at, running.counts) == ("running", None, Counts())
    assert (failed.status, failed.message) == ("failed", "the ERP is unavailable")


# --- locks ----------------------------------------------------------------------------------------


def test_lock_ids_are_stable_signed_64_bit_numbers():
    assert lock_id("CUSTOMER:pair:1") == lock_id("CUSTOMER:pair:1")
    assert lock_id("a") != lock_id("b")
    assert all(-(2**63) <= lock_id(n) < 2**63 for n in ("", "x", "ü" * 500))


def _advisory_waiters(store: Store) -> int:
    with store.engine.connect() as connection:
        query = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        return int(connection.execute(sa.text(query)).scalar_one())


class Recorder:
    def __init__(self) -> None:
        self.events: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, event: str) -> None:
        with self._lock:
            self.events.append(event)


def _run(target: Callable[[], None], failures: list[BaseException]) -> threading.Thread:
    def guarded() -> None:
        try:
            target()
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=guarded, daemon=True)
    thread.start()
    return thread


def test_advisory_locks_serialize_holders_of_overlapping_names(postgres_url):
    first_store, second_store = Store(postgres_url), Store(postgres_url)
    assert isinstance(first_store.locks, AdvisoryLocks)
    record, failures = Recorder(), list[BaseException]()
    a_inside, release_a, b_inside = threading.Event(), threading.Event(), threading.Event()

    def a() -> None:
        with first_store.locks.hold(["pair:1", "pair:2"]):
            record("a in")
            a_inside.set()
            release_a.wait(30)
            record("a out")

    def b() -> None:
        with second_store.locks.hold(["pair:3", "pair:2"]):
            record("b in")
            b_inside.set()

    try:
        thread_a = _run(a, failures)
        assert a_inside.wait(30)
        thread_b = _run(b, failures)
        wait_until(lambda: _advisory_waiters(first_store) == 1)  # b waits for pair:2
        assert not b_inside.is_set()
        release_a.set()
        thread_a.join(30)
        thread_b.join(30)
        assert failures == []
        assert record.events == ["a in", "a out", "b in"]
        assert _advisory_waiters(first_store) == 0
    finally:
        release_a.set()
        first_store.close()
        second_store.close()


def test_advisory_locks_of_disjoint_names_do_not_wait(postgres_url):
    store = Store(postgres_url)
    failures: list[BaseException] = []
    a_inside, release_a, b_inside = threading.Event(), threading.Event(), threading.Event()

    def a() -> None:
        with store.locks.hold(["x"]):
            a_inside.set()
            release_a.wait(30)

    def b() -> None:
        with store.locks.hold(["y"]), store.locks.hold([]):
            b_inside.set()

    try:
        thread_a = _run(a, failures)
        assert a_inside.wait(30)
        thread_b = _run(b, failures)
        assert b_inside.wait(30)  # while a still holds x
        release_a.set()
        thread_a.join(30)
        thread_b.join(30)
        assert failures == []
    finally:
        release_a.set()
        store.close()


def test_advisory_locks_are_released_when_the_block_fails(postgres_url):
    store = Store(postgres_url)
    try:
        with pytest.raises(RuntimeError), store.locks.hold(["pair:9"]):
            raise RuntimeError("inside")
        done = threading.Event()
        failures: list[BaseException] = []

        def again() -> None:
            with store.locks.hold(["pair:9"]):
                done.set()

        _run(again, failures).join(30)
        assert done.is_set()
        assert failures == []
    finally:
        store.close()


def test_advisory_locks_in_any_order_never_deadlock(postgres_url):
    stores = [Store(postgres_url), Store(postgres_url)]
    names = ["pair:1", "pair:2", "pair:3", "pair:4", "pair:5"]
    inside, most, failures = [0], [0], list[BaseException]()
    counter = threading.Lock()

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        locks = stores[seed % 2].locks
        for _ in range(15):
            chosen = rng.sample(names, rng.randint(2, 5))
            with locks.hold(["pair:1", *chosen]):  # everyone shares pair:1: at most one is inside
                with counter:
                    inside[0] += 1
                    most[0] = max(most[0], inside[0])
                with counter:
                    inside[0] -= 1

    try:
        threads = [_run(functools.partial(worker, seed), failures) for seed in range(4)]
        for thread in threads:
            thread.join(120)
        assert not any(thread.is_alive() for thread in threads), "deadlocked"
        assert failures == []
        assert most[0] == 1
    finally:
        for store in stores:
            store.close()


def _flock_waiters(path: Path) -> int:
    inode = os.stat(path).st_ino
    with open("/proc/locks", encoding="ascii") as locks:
        return sum(1 for line in locks if "->" in line and "FLOCK" in line and f":{inode} " in line)


def test_file_locks_serialize_stores_on_one_sqlite_database(sqlite_url):
    if not Path("/proc/locks").exists():
        pytest.skip("needs /proc/locks to see a waiting flock")
    first_store, second_store = Store(sqlite_url), Store(sqlite_url)  # as two processes would
    assert isinstance(first_store.locks, FileLocks)
    path = first_store.locks.path
    assert path is not None
    record, failures = Recorder(), list[BaseException]()
    a_inside, release_a = threading.Event(), threading.Event()

    def a() -> None:
        with first_store.locks.hold(["pair:1"]):
            record("a in")
            a_inside.set()
            release_a.wait(30)
            record("a out")

    def b() -> None:
        with second_store.locks.hold(["pair:2"]):  # one lock for the whole store: names do not matter
            record("b in")

    try:
        thread_a = _run(a, failures)
        assert a_inside.wait(30)
        thread_b = _run(b, failures)
        wait_until(lambda: _flock_waiters(path) == 1)
        assert record.events == ["a in"]
        release_a.set()
        thread_a.join(30)
        thread_b.join(30)
        assert failures == []
        assert record.events == ["a in", "a out", "b in"]
    finally:
        release_a.set()
        first_store.close()
        second_store.close()


def test_file_locks_serialize_threads_of_one_store(sqlite_url):
    store = Store(sqlite_url)
    record, failures = Recorder(), list[BaseException]()
    a_inside, b_trying, release_a, b_inside = (threading.Event() for _ in range(4))

    def a() -> None:
        with store.locks.hold(["x"]):
            record("a in")
            a_inside.set()
            release_a.wait(30)
            record("a out")

    def b() -> None:
        b_trying.set()
        with store.locks.hold(["y"]):
            record("b in")
            b_inside.set()

    try:
        thread_a = _run(a, failures)
        assert a_inside.wait(30)
        thread_b = _run(b, failures)
        assert b_trying.wait(30)
        # nothing to observe while a thread waits on a mutex: b must not get in within a while
        assert not b_inside.wait(0.3)
        release_a.set()
        thread_a.join(30)
        thread_b.join(30)
        assert failures == []
        assert record.events == ["a in", "a out", "b in"]
    finally:
        release_a.set()
        store.close()


def test_file_locks_are_reentrant_in_one_thread(sqlite_url):
    store = Store(sqlite_url)
    failures: list[BaseException] = []
    depths: list[str] = []

    def nested() -> None:
        with store.locks.hold(["a"]):
            depths.append("outer")
            with store.locks.hold(["a", "b"]):
                depths.append("inner")
                with store.locks.hold([]):
                    depths.append("innermost")
            depths.append("outer again")
        # and released: another thread gets in
        other = threading.Event()

        def enter() -> None:
            with store.locks.hold(["a"]):
                other.set()

        _run(enter, failures).join(30)
        assert other.is_set()

    try:
        thread = _run(nested, failures)
        thread.join(30)
        assert not thread.is_alive(), "a nested hold waited for itself"
        assert failures == []
        assert depths == ["outer", "inner", "innermost", "outer again"]
    finally:
        store.close()
