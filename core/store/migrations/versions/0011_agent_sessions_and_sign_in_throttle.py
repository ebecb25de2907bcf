"""agent session versions (sign out other sessions) and the sign-in throttle

Revision ID: 0011
Revises: 0010
"""
from alembic import op
import sqlalchemy as sa
import core.store.models


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('agent', schema=None) as batch_op:
        batch_op.add_column(sa.Column('session_version', sa.Integer(), server_default='1', nullable=False))
    op.create_table('sign_in_throttle',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('scope', sa.String(length=16), nullable=False),
    sa.Column('key', sa.String(length=320), nullable=False),
    sa.Column('failures', sa.JSON(), nullable=False),
    sa.Column('locked_until', core.store.models.UTCDateTime(), nullable=True),
    sa.Column('updated_at', core.store.models.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('scope', 'key')
    )


def downgrade() -> None:
    op.drop_table('sign_in_throttle')
    with op.batch_alter_table('agent', schema=None) as batch_op:
        batch_op.drop_column('session_version')
