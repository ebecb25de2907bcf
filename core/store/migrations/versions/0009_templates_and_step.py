"""template status table; the flow step on each message

Revision ID: 0009
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa
import core.store.models


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('template',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('workspace_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=512), nullable=False),
    sa.Column('language', sa.String(length=16), nullable=False),
    sa.Column('category', sa.String(length=24), nullable=False),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('quality', sa.String(length=16), nullable=True),
    sa.Column('rejected_reason', sa.Text(), nullable=True),
    sa.Column('remote_id', sa.String(length=64), nullable=True),
    sa.Column('components', sa.JSON(), nullable=True),
    sa.Column('submitted_at', core.store.models.UTCDateTime(), nullable=True),
    sa.Column('updated_at', core.store.models.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('workspace_id', 'name', 'language')
    )
    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.add_column(sa.Column('flow_step', sa.String(length=120), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.drop_column('flow_step')
    op.drop_table('template')
