"""The coupling store's tables, as SQLAlchemy Core (the migrations create the same)."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

# SQLite only autoincrements INTEGER PRIMARY KEY; elsewhere ids are 64-bit.
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Moment = sa.DateTime(timezone=True)

coupling = sa.Table(
    "tandem_coupling",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("mapping", sa.String(200), nullable=False),
    sa.Column("a_key", sa.String(500)),
    sa.Column("b_key", sa.String(500)),
    sa.Column("base", sa.JSON),
    sa.Column("versions", sa.JSON),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
    sa.Column("skipped", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("last_error", sa.Text),
    sa.Column("last_job_id", Id),
    sa.Column("synced_at", Moment),
    sa.Column("created_at", Moment, nullable=False),
    sa.Column("updated_at", Moment, nullable=False),
    sa.UniqueConstraint("mapping", "a_key", name="uq_tandem_coupling_a"),
    sa.UniqueConstraint("mapping", "b_key", name="uq_tandem_coupling_b"),
)

job = sa.Table(
    "tandem_job",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("mapping", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("direction", sa.String(100), nullable=False),
    sa.Column("trigger", sa.String(50), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("started_at", Moment, nullable=False),
    sa.Column("finished_at", Moment),
    sa.Column("inserted", sa.Integer, nullable=False, server_default="0"),
    sa.Column("modified", sa.Integer, nullable=False, server_default="0"),
    sa.Column("deleted", sa.Integer, nullable=False, server_default="0"),
    sa.Column("unchanged", sa.Integer, nullable=False, server_default="0"),
    sa.Column("skipped", sa.Integer, nullable=False, server_default="0"),
    sa.Column("failed", sa.Integer, nullable=False, server_default="0"),
    sa.Column("coupled", sa.Integer, nullable=False, server_default="0"),
    sa.Column("uncoupled", sa.Integer, nullable=False, server_default="0"),
    sa.Column("message", sa.Text),
    sa.Index("ix_tandem_job_mapping", "mapping", "id"),
)

error = sa.Table(
    "tandem_error",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("job_id", Id),
    sa.Column("mapping", sa.String(200), nullable=False),
    sa.Column("subject", sa.String(600), nullable=False),
    sa.Column("coupling_id", Id),
    sa.Column("system", sa.String(200), nullable=False),
    sa.Column("record_key", sa.String(500), nullable=False),
    sa.Column("a_key", sa.String(500)),
    sa.Column("b_key", sa.String(500)),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("detail", sa.JSON),
    sa.Column("occurrences", sa.Integer, nullable=False, server_default="1"),
    sa.Column("skipped", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("created_at", Moment, nullable=False),
    sa.Column("updated_at", Moment, nullable=False),
    sa.Column("resolved_at", Moment),
    sa.Index("ix_tandem_error_state", "state", "mapping"),
    sa.Index(
        "uq_tandem_error_open",
        "mapping",
        "subject",
        unique=True,
        sqlite_where=sa.text("state = 'open'"),
        postgresql_where=sa.text("state = 'open'"),
    ),
)

inbox = sa.Table(
    "tandem_inbox",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(500), nullable=False),
    sa.Column("mapping", sa.String(200), nullable=False),
    sa.Column("system", sa.String(200), nullable=False),
    sa.Column("table_name", sa.String(500), nullable=False),
    sa.Column("record_key", sa.String(500), nullable=False),
    sa.Column("op", sa.String(10), nullable=False),
    sa.Column("since", Moment),
    sa.Column("occurred_at", Moment),
    sa.Column("published_at", Moment),
    sa.Column("received_at", Moment, nullable=False),
    sa.Column("enqueued_at", Moment),
    sa.Column("applied_at", Moment),
    sa.Column("state", sa.String(10), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text),
    sa.UniqueConstraint("event_id", "mapping", name="uq_tandem_inbox_event"),
    sa.Index("ix_tandem_inbox_state", "state", "id"),
    sa.Index("ix_tandem_inbox_received", "received_at"),
)

invalid_event = sa.Table(
    "tandem_invalid_event",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("received_at", Moment, nullable=False),
    sa.Column("source", sa.String(200), nullable=False),
    sa.Column("routing_key", sa.String(1000)),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("state", sa.String(10), nullable=False),
    sa.Index("ix_tandem_invalid_state", "state", "id"),
)

watermark = sa.Table(
    "tandem_watermark",
    metadata,
    sa.Column("system", sa.String(200), primary_key=True),
    sa.Column("table_name", sa.String(500), primary_key=True),
    sa.Column("value", sa.JSON),
    sa.Column("updated_at", Moment, nullable=False),
)
