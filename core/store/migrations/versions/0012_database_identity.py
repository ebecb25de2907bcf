"""database identity: one row with a random id naming this database, whatever URL reaches it
(the bridge records it in Redis; `replyflow worker` refuses to start on another database)

Revision ID: 0012
Revises: 0011
"""
import uuid

from alembic import op
import sqlalchemy as sa


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table('database_identity',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('uuid', sa.String(length=36), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('uuid')
    )
    op.bulk_insert(table, [{'id': 1, 'uuid': str(uuid.uuid4())}])


def downgrade() -> None:
    op.drop_table('database_identity')
