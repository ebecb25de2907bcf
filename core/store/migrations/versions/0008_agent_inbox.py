"""agent inbox: agent accounts and read markers

Revision ID: 0008
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa
import core.store.models


revision = '0008'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('agent',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('workspace_id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', core.store.models.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('email')
    )
    op.create_index(op.f('ix_agent_workspace_id'), 'agent', ['workspace_id'], unique=False)
    op.create_table('agent_read',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('agent_id', sa.Integer(), nullable=False),
    sa.Column('conversation_id', sa.Integer(), nullable=False),
    sa.Column('last_message_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['agent_id'], ['agent.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversation.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('agent_id', 'conversation_id')
    )
    op.create_index(op.f('ix_agent_read_conversation_id'), 'agent_read', ['conversation_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_agent_read_conversation_id'), table_name='agent_read')
    op.drop_table('agent_read')
    op.drop_index(op.f('ix_agent_workspace_id'), table_name='agent')
    op.drop_table('agent')
