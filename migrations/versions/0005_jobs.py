"""jobs for bulk updates and imports; inbox items name their job

A job keeps its resolved targets and a cursor, so a worker killed mid-way resumes where the last
committed batch ended (R-REL-2). An Idempotency-Key is unique per firm and staff user.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 08:52:00.565665

"""
import warnings

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('jobs',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('firm_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('staff_user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('idempotency_key', sa.String(length=200), nullable=True),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('targets', sa.JSON(), nullable=True),
    sa.Column('cursor', sa.Integer(), nullable=False),
    sa.Column('progress_total', sa.Integer(), nullable=False),
    sa.Column('result', sa.JSON(), nullable=False),
    sa.Column('errors', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("state in ('queued', 'running', 'done', 'failed')", name=op.f('ck_jobs_state_known')),
    sa.ForeignKeyConstraint(['firm_id'], ['firms.id'], name=op.f('fk_jobs_firm_id_firms'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['staff_user_id'], ['staff_users.id'], name=op.f('fk_jobs_staff_user_id_staff_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_jobs')),
    sa.UniqueConstraint('firm_id', 'staff_user_id', 'idempotency_key', name=op.f('uq_jobs_firm_id_staff_user_id_idempotency_key'))
    )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.create_index('ix_jobs_firm_id_id', ['firm_id', 'id'], unique=False)
        batch_op.create_index('ix_jobs_state_heartbeat_at', ['state', 'heartbeat_at'], unique=False)

    # SQLite rebuilds the table to add a foreign key; reflecting the tables it refers to warns
    # about expression indexes (lower(name)) it cannot reflect and does not need.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based index")
        with op.batch_alter_table('inbox_items', schema=None) as batch_op:
            batch_op.add_column(sa.Column('job_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True))
            batch_op.create_foreign_key(batch_op.f('fk_inbox_items_job_id_jobs'), 'jobs', ['job_id'], ['id'], ondelete='SET NULL')



def downgrade():
    with op.batch_alter_table('inbox_items', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_inbox_items_job_id_jobs'), type_='foreignkey')
        batch_op.drop_column('job_id')

    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_jobs_state_heartbeat_at')
        batch_op.drop_index('ix_jobs_firm_id_id')

    op.drop_table('jobs')
