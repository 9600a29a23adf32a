"""The coupling store's operations: bulk reads of couplings, and one transaction per batch of results."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine, make_url

from adapters.sqlengine import make_engines, one_of
from adapters.store import migrate
from adapters.store.bulk import insert_rows
from adapters.store.locks import AdvisoryLocks, FileLocks, Locks
from adapters.store.statistics import Statistics
from adapters.store.tables import coupling as T_COUPLING
from adapters.store.tables import error as T_ERROR
from adapters.store.tables import inbox as T_INBOX
from adapters.store.tables import job as T_JOB
from domain.coupling import Coupling, CouplingStatus
from domain.jobs import Counts
from domain.mapping import TableMapping
from domain.values import Value

CHUNK = 500


class StoreError(Exception):
    """The coupling store cannot do what was asked."""


class AlreadyCoupled(StoreError):
    """A record is coupled already (a unique constraint of the coupling table said so)."""


_UNNEST_UPDATE = sa.text(
    """
    UPDATE tandem_coupling AS t SET
      a_key = v.a_key, b_key = v.b_key, base = v.base::json, versions = v.versions::json,
      status = v.status, failures = v.failures, skipped = v.skipped, last_error = v.last_error,
      last_job_id = :job, updated_at = :moment,
      synced_at = CASE WHEN v.synced THEN :moment ELSE t.synced_at END
    FROM unnest(
      CAST(:ids AS bigint[]), CAST(:a_keys AS varchar[]), CAST(:b_keys AS varchar[]),
      CAST(:bases AS text[]), CAST(:versions AS text[]), CAST(:statuses AS varchar[]),
      CAST(:failures AS integer[]), CAST(:skipped AS boolean[]), CAST(:errors AS text[]),
      CAST(:synced AS boolean[])
    ) AS v(id, a_key, b_key, base, versions, status, failures, skipped, last_error, synced)
    WHERE t.id = v.id AND t.id = ANY(CAST(:ids AS bigint[]))
    """
)


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class JobRow:
    id: int
    mapping: str
    kind: str
    direction: str
    trigger: str
    status: str
    started_at: dt.datetime
    finished_at: dt.datetime | None
    counts: Counts
    message: str | None


@dataclass(frozen=True)
class ErrorRow:
    id: int
    job_id: int | None
    mapping: str
    subject: str
    coupling_id: int | None
    system: str
    record_key: str
    a_key: str | None
    b_key: str | None
    kind: str
    message: str
    detail: Any
    occurrences: int
    skipped: bool
    state: str
    created_at: dt.datetime
    updated_at: dt.datetime
    resolved_at: dt.datetime | None


@dataclass(frozen=True)
class ErrorReport:
    """A record's failure as the executor decided it (occurrences already counted)."""

    subject: str
    coupling_id: int | None
    system: str
    record_key: str
    keys: dict[str, str | None]
    kind: str
    message: str
    detail: Any
    occurrences: int
    skipped: bool


@dataclass
class BatchWrite:
    """Everything a batch changes in the store, written in one transaction."""

    job_id: int | None
    counts: Counts = field(default_factory=Counts)
    inserted: list[Coupling] = field(default_factory=list)
    changed: list[Coupling] = field(default_factory=list)
    removed: list[int] = field(default_factory=list)
    errors: list[ErrorReport] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)
    events_done: list[int] = field(default_factory=list)  # inbox rows applied by this batch


def subject_of(coupling: Coupling | None, system: str, key: str) -> str:
    """What an open error is about: a coupled pair, or one uncoupled record."""
    if coupling is not None and coupling.id is not None:
        return f"coupling:{coupling.id}"
    return f"record:{system}:{key}"


class Store:
    def __init__(self, url: str, *, upgrade: bool = True, engine: Engine | None = None) -> None:
        self.url = url
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        self.engine, self.reader = (engine, engine) if engine is not None else make_engines(url)
        self.statistics = Statistics(self.reader)
        self.locks: Locks
        if self.engine.dialect.name == "postgresql":
            self.locks = AdvisoryLocks(self.reader)
        elif self.engine.dialect.name == "sqlite":
            database = parsed.database
            path = Path(database + ".lock") if database and database != ":memory:" else None
            self.locks = FileLocks(path)
        else:
            raise StoreError(
                f"the coupling store runs on SQLite or PostgreSQL, not {self.engine.dialect.name}"
            )
        if upgrade:
            migrate.upgrade(self.engine)

    def close(self) -> None:
        self.engine.dispose()
        self.reader.dispose()

    # --- couplings ------------------------------------------------------------------------------

    def _one_of(self, column: sa.ColumnElement[Any], values: Sequence[Any]) -> sa.ColumnElement[bool]:
        return one_of(column, values, self.engine.dialect.name)

    @staticmethod
    def _side_column(mapping: TableMapping, system: str) -> sa.Column[Any]:
        return T_COUPLING.c.a_key if system == mapping.systems[0] else T_COUPLING.c.b_key

    @staticmethod
    def _coupling(mapping: TableMapping, row: Any) -> Coupling:
        first, second = mapping.systems
        return Coupling(
            mapping=row.mapping,
            keys={first: row.a_key, second: row.b_key},
            base=row.base,
            versions=row.versions or {},
            status=CouplingStatus(row.status),
            failures=row.failures,
            skipped=row.skipped,
            last_error=row.last_error,
            id=row.id,
        )

    def couplings(self, mapping: TableMapping, system: str, keys: Iterable[str]) -> dict[str, Coupling]:
        """The couplings of these keys of one side, by key."""
        column = self._side_column(mapping, system)
        wanted = list(dict.fromkeys(keys))
        found: dict[str, Coupling] = {}
        with self.reader.connect() as connection:
            for start in range(0, len(wanted), CHUNK):
                chunk = wanted[start : start + CHUNK]
                query = sa.select(T_COUPLING).where(
                    T_COUPLING.c.mapping == mapping.name, self._one_of(column, chunk)
                )
                for row in connection.execute(query):
                    coupling = self._coupling(mapping, row)
                    found[coupling.keys[system] or ""] = coupling
        return found

    def couplings_by_id(self, mapping: TableMapping, ids: Iterable[int]) -> dict[int, Coupling]:
        wanted = list(dict.fromkeys(ids))
        found: dict[int, Coupling] = {}
        with self.reader.connect() as connection:
            for start in range(0, len(wanted), CHUNK):
                query = sa.select(T_COUPLING).where(
                    T_COUPLING.c.mapping == mapping.name, T_COUPLING.c.id.in_(wanted[start : start + CHUNK])
                )
                for row in connection.execute(query):
                    found[row.id] = self._coupling(mapping, row)
        return found

    def translate(self, mapping: TableMapping, system: str, keys: Iterable[str]) -> dict[str, str]:
        """For lookups: the counterpart key of each coupled key of one side."""
        return {
            key: other
            for key, coupling in self.couplings(mapping, system, keys).items()
            if (other := coupling.keys[mapping.other(system)]) is not None
        }

    def list_couplings(
        self,
        mapping: TableMapping,
        *,
        status: str | None = None,
        limit: int | None = None,
        offset: int = 0,
        after_id: int | None = None,
    ) -> list[Coupling]:
        """Couplings in id order; page with `after_id` (stable while couplings come and go) or `offset`."""
        query = sa.select(T_COUPLING).where(T_COUPLING.c.mapping == mapping.name)
        if status is not None:
            query = query.where(T_COUPLING.c.status == status)
        if after_id is not None:
            query = query.where(T_COUPLING.c.id > after_id)
        query = query.order_by(T_COUPLING.c.id).offset(offset).limit(limit)
        with self.reader.connect() as connection:
            return [self._coupling(mapping, row) for row in connection.execute(query)]

    def count_couplings(self, mapping: str | None = None) -> int:
        query = sa.select(sa.func.count()).select_from(T_COUPLING)
        if mapping is not None:
            query = query.where(T_COUPLING.c.mapping == mapping)
        with self.reader.connect() as connection:
            return int(connection.execute(query).scalar_one())

    def insert_pending(
        self, mapping: TableMapping, system: str, keys: Sequence[str], job_id: int | None
    ) -> list[int]:
        """Records, before a create, which source records are getting a counterpart (see recover)."""
        column = "a_key" if system == mapping.systems[0] else "b_key"
        moment = now()
        rows = [
            {
                "mapping": mapping.name,
                column: key,
                "status": CouplingStatus.PENDING.value,
                "failures": 0,
                "skipped": False,
                "last_job_id": job_id,
                "created_at": moment,
                "updated_at": moment,
            }
            for key in keys
        ]
        if not rows:
            return []
        try:
            with self.engine.begin() as connection:
                ids = insert_rows(connection, T_COUPLING, rows, returning=T_COUPLING.c.id)
        except sa_exc.IntegrityError as exc:
            raise AlreadyCoupled(f"a record of {mapping.name} is coupled already: {exc.orig}") from exc
        self.statistics.added("tandem_coupling", len(ids))
        return ids

    def _row(
        self, mapping: TableMapping, coupling: Coupling, moment: dt.datetime, job_id: int | None
    ) -> dict[str, Any]:
        first, second = mapping.systems
        row: dict[str, Any] = {
            "mapping": mapping.name,
            "a_key": coupling.keys.get(first),
            "b_key": coupling.keys.get(second),
            "base": coupling.base,
            "versions": coupling.versions or None,
            "status": coupling.status.value,
            "failures": coupling.failures,
            "skipped": coupling.skipped,
            "last_error": coupling.last_error,
            "last_job_id": job_id,
            "updated_at": moment,
        }
        row["synced_at"] = moment if coupling.status is CouplingStatus.SYNCED else None
        return row

    def _update_many(
        self,
        connection: sa.Connection,
        mapping: TableMapping,
        couplings: list[Coupling],
        moment: dt.datetime,
        job_id: int | None,
    ) -> None:
        rows = [self._row(mapping, c, moment, job_id) for c in couplings]
        names = sorted(rows[0])
        assignments: dict[sa.Column[Any], sa.ColumnElement[Any]] = {
            T_COUPLING.c[n]: sa.bindparam(f"v_{n}") for n in names
        }
        # a failed sync keeps the time of the last successful one
        assignments[T_COUPLING.c.synced_at] = sa.func.coalesce(
            sa.bindparam("v_synced_at"), T_COUPLING.c.synced_at
        )
        statement = sa.update(T_COUPLING).where(T_COUPLING.c.id == sa.bindparam("_id")).values(assignments)
        params = [
            {"_id": c.id, **{f"v_{n}": row[n] for n in names}} for c, row in zip(couplings, rows, strict=True)
        ]
        connection.execute(statement, params)

    def _update_unnest(
        self,
        connection: sa.Connection,
        mapping: TableMapping,
        couplings: list[Coupling],
        moment: dt.datetime,
        job_id: int | None,
    ) -> None:
        """PostgreSQL: one UPDATE for the whole batch, its values passed as one array per column."""
        first, second = mapping.systems
        connection.execute(
            _UNNEST_UPDATE,
            {
                "ids": [c.id for c in couplings],
                "a_keys": [c.keys.get(first) for c in couplings],
                "b_keys": [c.keys.get(second) for c in couplings],
                "bases": [None if c.base is None else json.dumps(c.base) for c in couplings],
                "versions": [json.dumps(c.versions) if c.versions else None for c in couplings],
                "statuses": [c.status.value for c in couplings],
                "failures": [c.failures for c in couplings],
                "skipped": [c.skipped for c in couplings],
                "errors": [c.last_error for c in couplings],
                "synced": [c.status is CouplingStatus.SYNCED for c in couplings],
                "job": job_id,
                "moment": moment,
            },
        )

    def commit(self, mapping: TableMapping, batch: BatchWrite) -> None:
        """Writes a batch's couplings, errors and counts in one transaction."""
        moment = now()
        try:
            with self.engine.begin() as connection:
                self._write(connection, mapping, batch, moment)
        except sa_exc.IntegrityError as exc:
            raise AlreadyCoupled(f"a record of {mapping.name} is coupled already: {exc.orig}") from exc
        self.statistics.added("tandem_coupling", len(batch.inserted))

    def _write(
        self, connection: sa.Connection, mapping: TableMapping, batch: BatchWrite, moment: dt.datetime
    ) -> None:
        if batch.removed:
            for start in range(0, len(batch.removed), CHUNK):
                chunk = batch.removed[start : start + CHUNK]
                connection.execute(sa.delete(T_COUPLING).where(T_COUPLING.c.id.in_(chunk)))
                connection.execute(
                    sa.update(T_ERROR)
                    .where(T_ERROR.c.state == "open", T_ERROR.c.coupling_id.in_(chunk))
                    .values(state="resolved", resolved_at=moment, updated_at=moment)
                )
        if batch.changed:
            if connection.dialect.name == "postgresql":
                self._update_unnest(connection, mapping, batch.changed, moment, batch.job_id)
            else:
                self._update_many(connection, mapping, batch.changed, moment, batch.job_id)
        if batch.inserted:
            rows = [
                {**self._row(mapping, c, moment, batch.job_id), "created_at": moment} for c in batch.inserted
            ]
            ids = insert_rows(connection, T_COUPLING, rows, returning=T_COUPLING.c.id)
            for coupling, new_id in zip(batch.inserted, ids, strict=True):
                coupling.id = new_id
        if batch.resolved:
            for start in range(0, len(batch.resolved), CHUNK):
                subjects = batch.resolved[start : start + CHUNK]
                connection.execute(
                    sa.update(T_ERROR)
                    .where(
                        T_ERROR.c.mapping == mapping.name,
                        T_ERROR.c.state == "open",
                        self._one_of(T_ERROR.c.subject, subjects),
                    )
                    .values(state="resolved", resolved_at=moment, updated_at=moment)
                )
        if batch.errors:
            self._report(connection, mapping, batch, moment)
        for start in range(0, len(batch.events_done), CHUNK):
            connection.execute(
                sa.update(T_INBOX)
                .where(
                    self._one_of(T_INBOX.c.id, batch.events_done[start : start + CHUNK]),
                    T_INBOX.c.state != "done",
                )
                .values(state="done", applied_at=moment, last_error=None)
            )
        if batch.job_id is not None and batch.counts.total:
            values = {name: getattr(T_JOB.c, name) + n for name, n in batch.counts.as_dict().items() if n}
            connection.execute(sa.update(T_JOB).where(T_JOB.c.id == batch.job_id).values(values))

    def _report(
        self, connection: sa.Connection, mapping: TableMapping, batch: BatchWrite, moment: dt.datetime
    ) -> None:
        first, second = mapping.systems
        subjects = [e.subject for e in batch.errors]
        existing = {
            row.subject: row.id
            for row in connection.execute(
                sa.select(T_ERROR.c.id, T_ERROR.c.subject).where(
                    T_ERROR.c.mapping == mapping.name,
                    T_ERROR.c.state == "open",
                    self._one_of(T_ERROR.c.subject, subjects),
                )
            )
        }
        for report in batch.errors:
            values = {
                "job_id": batch.job_id,
                "coupling_id": report.coupling_id,
                "system": report.system,
                "record_key": report.record_key,
                "a_key": report.keys.get(first),
                "b_key": report.keys.get(second),
                "kind": report.kind,
                "message": report.message,
                "detail": report.detail,
                "occurrences": report.occurrences,
                "skipped": report.skipped,
                "updated_at": moment,
            }
            if report.subject in existing:
                connection.execute(
                    sa.update(T_ERROR).where(T_ERROR.c.id == existing[report.subject]).values(values)
                )
            else:
                # a later report for the same subject in this batch updates this row
                existing[report.subject] = connection.execute(
                    sa.insert(T_ERROR)
                    .values(
                        mapping=mapping.name,
                        subject=report.subject,
                        state="open",
                        created_at=moment,
                        **values,
                    )
                    .returning(T_ERROR.c.id)
                ).scalar_one()

    # --- jobs -----------------------------------------------------------------------------------

    def start_job(self, mapping: str, kind: str, direction: str, trigger: str) -> int:
        with self.engine.begin() as connection:
            result = connection.execute(
                sa.insert(T_JOB)
                .values(
                    mapping=mapping,
                    kind=kind,
                    direction=direction,
                    trigger=trigger,
                    status="running",
                    started_at=now(),
                )
                .returning(T_JOB.c.id)
            )
            return int(result.scalar_one())

    def finish_job(self, job_id: int, status: str = "finished", message: str | None = None) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                sa.update(T_JOB)
                .where(T_JOB.c.id == job_id)
                .values(status=status, finished_at=now(), message=message)
            )

    def jobs(
        self, mapping: str | None = None, limit: int = 50, ids: Sequence[int] | None = None
    ) -> list[JobRow]:
        query = sa.select(T_JOB)
        if mapping is not None:
            query = query.where(T_JOB.c.mapping == mapping)
        if ids is not None:
            query = query.where(T_JOB.c.id.in_(list(ids)))
        query = query.order_by(T_JOB.c.id.desc()).limit(limit)
        with self.reader.connect() as connection:
            return [_job(row) for row in connection.execute(query)]

    # --- errors ---------------------------------------------------------------------------------

    def errors(
        self,
        mapping: str | None = None,
        *,
        state: str | None = "open",
        ids: Sequence[int] | None = None,
        subjects: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> list[ErrorRow]:
        query = sa.select(T_ERROR)
        if mapping is not None:
            query = query.where(T_ERROR.c.mapping == mapping)
        if state is not None:
            query = query.where(T_ERROR.c.state == state)
        if ids is not None:
            query = query.where(T_ERROR.c.id.in_(list(ids)))
        if subjects is not None:
            query = query.where(T_ERROR.c.subject.in_(list(subjects)))
        query = query.order_by(T_ERROR.c.id).limit(limit)
        with self.reader.connect() as connection:
            return [ErrorRow(**row._asdict()) for row in connection.execute(query)]

    def count_errors(self, mapping: str | None = None, state: str = "open") -> int:
        query = sa.select(sa.func.count()).select_from(T_ERROR).where(T_ERROR.c.state == state)
        if mapping is not None:
            query = query.where(T_ERROR.c.mapping == mapping)
        with self.reader.connect() as connection:
            return int(connection.execute(query).scalar_one())

    def resolve_errors(self, ids: Sequence[int], state: str = "resolved") -> None:
        with self.engine.begin() as connection:
            connection.execute(
                sa.update(T_ERROR)
                .where(T_ERROR.c.id.in_(list(ids)), T_ERROR.c.state == "open")
                .values(state=state, resolved_at=now(), updated_at=now())
            )

    def unpark(self, mapping: TableMapping, subjects: Sequence[str]) -> None:
        """Clears the skipped mark of these records so that the next sync tries them again."""
        coupling_ids = [int(s.split(":", 1)[1]) for s in subjects if s.startswith("coupling:")]
        with self.engine.begin() as connection:
            connection.execute(
                sa.update(T_ERROR)
                .where(
                    T_ERROR.c.mapping == mapping.name,
                    T_ERROR.c.state == "open",
                    T_ERROR.c.subject.in_(list(subjects)),
                )
                .values(skipped=False, occurrences=0, updated_at=now())
            )
            if coupling_ids:
                connection.execute(
                    sa.update(T_COUPLING)
                    .where(T_COUPLING.c.id.in_(coupling_ids), T_COUPLING.c.skipped.is_(True))
                    .values(skipped=False, failures=0, status=CouplingStatus.FAILED.value, updated_at=now())
                )


def _job(row: Any) -> JobRow:
    counts = Counts(**{name: getattr(row, name) for name in Counts().as_dict()})
    return JobRow(
        id=row.id,
        mapping=row.mapping,
        kind=row.kind,
        direction=row.direction,
        trigger=row.trigger,
        status=row.status,
        started_at=row.started_at,
        finished_at=row.finished_at,
        counts=counts,
        message=row.message,
    )


def versions_of(mapping: TableMapping, records: dict[str, dict[str, Value] | None]) -> dict[str, Value]:
    """Each side's version value, from the records as they are now."""
    found: dict[str, Value] = {}
    for system, record in records.items():
        column = mapping.side(system).version
        if record is not None and column:
            found[system] = record.get(column)
    return found
