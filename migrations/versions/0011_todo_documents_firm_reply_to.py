"""to-dos name the documents a client reads before signing or approving (and count them, so the
portal asks for them only when there are any); firms.reply_to

Revision ID: 0011
Revises: 0010
"""
import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "todo_documents",
        sa.Column("todo_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("document_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["todo_id"], ["todos.id"], name="fk_todo_documents_todo_id_todos", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["document_id"], ["documents.id"], name="fk_todo_documents_document_id_documents", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("todo_id", "document_id", name="pk_todo_documents"),
    )
    op.create_index("ix_todo_documents_document_id", "todo_documents", ["document_id"])
    with op.batch_alter_table("firms") as batch:
        batch.add_column(sa.Column("reply_to", sa.String(length=254), nullable=True))
    with op.batch_alter_table("todos") as batch:
        batch.add_column(sa.Column("document_count", sa.Integer(), nullable=False, server_default="0"))


def downgrade():
    with op.batch_alter_table("todos") as batch:
        batch.drop_column("document_count")
    with op.batch_alter_table("firms") as batch:
        batch.drop_column("reply_to")
    op.drop_index("ix_todo_documents_document_id", "todo_documents")
    op.drop_table("todo_documents")
