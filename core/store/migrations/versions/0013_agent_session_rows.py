"""agent sessions kept in the database: signing out ends that session on the server, so a copied
cookie stops working; the account page lists the open ones

Revision ID: 0013
Revises: 0012
"""
from alembic import op
import sqlalchemy as sa
import core.store.models


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('agent_session',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('agent_id', sa.Integer(), nullable=False),
    sa.Column('created_at', core.store.models.UTCDateTime(), nullable=False),
    sa.Column('last_seen_at', core.store.models.UTCDateTime(), nullable=False),
    sa.Column('client', sa.String(length=120), nullable=False),
    sa.Column('address', sa.String(length=64), nullable=False),
    sa.Column('ended_at', core.store.models.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['agent_id'], ['agent.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash')
    )
    op.create_index(op.f('ix_agent_session_agent_id'), 'agent_session', ['agent_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_agent_session_agent_id'), table_name='agent_session')
    op.drop_table('agent_session')
