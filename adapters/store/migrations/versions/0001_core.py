"""Couplings, sync jobs and errors."""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Moment = sa.DateTime(timezone=True)

LOCK_ALL = """
CREATE OR REPLACE FUNCTION tandem_lock_all(keys bigint[]) RETURNS integer AS $$
DECLARE k bigint; n integer := 0;
BEGIN
  -- one lock after the other, in ascending order, so that two batches can never deadlock
  FOR k IN SELECT DISTINCT unnest(keys) ORDER BY 1 LOOP
    PERFORM pg_advisory_lock(k);
    n := n + 1;
  END LOOP;
  RETURN n;
END $$ LANGUAGE plpgsql
"""


def upgrade() -> None:
    op.create_table(
        "tandem_coupling",
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
    op.create_table(
        "tandem_job",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("mapping", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("direction", sa.String(100), nullable=False),
        sa.Column("trigger", sa.String(50), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("started_at", Moment, nullable=False),
        sa.Column("finished_at", Moment),
        *(
            sa.Column(name, sa.Integer, nullable=False, server_default="0")
            for name in (
                "inserted",
                "modified",
                "deleted",
                "unchanged",
                "skipped",
                "failed",
                "coupled",
                "uncoupled",
            )
        ),
        sa.Column("message", sa.Text),
    )
    op.create_index("ix_tandem_job_mapping", "tandem_job", ["mapping", "id"])
    op.create_table(
        "tandem_error",
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
    )
    op.create_index("ix_tandem_error_state", "tandem_error", ["state", "mapping"])
    op.create_index(
        "uq_tandem_error_open",
        "tandem_error",
        ["mapping", "subject"],
        unique=True,
        sqlite_where=sa.text("state = 'open'"),
        postgresql_where=sa.text("state = 'open'"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(LOCK_ALL)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS tandem_lock_all(bigint[])")
    op.drop_table("tandem_error")
    op.drop_table("tandem_job")
    op.drop_table("tandem_coupling")
