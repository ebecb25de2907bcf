"""partial indexes of the open rows the sweeper looks for (queued/sending messages, pending
webhooks and actions), so a sweep costs the work to do, not the length of the history

Revision ID: 0010
Revises: 0009
"""
from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

_INDEXES = (
    ("ix_message_queued", "message", "status_at", "queued"),
    ("ix_message_sending", "message", "status_at", "sending"),
    ("ix_inbound_event_pending", "inbound_event", "received_at", "pending"),
    ("ix_action_task_pending", "action_task", "updated_at", "pending"),
)


def upgrade() -> None:
    for name, table, column, status in _INDEXES:
        where = sa.text(f"status = '{status}'")
        op.create_index(name, table, [column], unique=False, sqlite_where=where, postgresql_where=where)


def downgrade() -> None:
    for name, table, _column, _status in reversed(_INDEXES):
        op.drop_index(name, table_name=table)
