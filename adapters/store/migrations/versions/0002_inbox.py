"""The event inbox, parked invalid events and the poller's watermarks."""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Moment = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "tandem_inbox",
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
    )
    op.create_index("ix_tandem_inbox_state", "tandem_inbox", ["state", "id"])
    op.create_index("ix_tandem_inbox_received", "tandem_inbox", ["received_at"])
    op.create_table(
        "tandem_invalid_event",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("received_at", Moment, nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("routing_key", sa.String(1000)),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
    )
    op.create_index("ix_tandem_invalid_state", "tandem_invalid_event", ["state", "id"])
    op.create_table(
        "tandem_watermark",
        sa.Column("system", sa.String(200), primary_key=True),
        sa.Column("table_name", sa.String(500), primary_key=True),
        sa.Column("value", sa.JSON),
        sa.Column("updated_at", Moment, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("tandem_watermark")
    op.drop_table("tandem_invalid_event")
    op.drop_table("tandem_inbox")
