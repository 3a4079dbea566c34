"""API keys, sessions and stored responses: the tables the store held before it had
migrations. A SQLite file written then already has them, so each is created only when
it is missing.

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    present = set(sa.inspect(op.get_bind()).get_table_names())
    if "api_keys" not in present:
        op.create_table(
            "api_keys",
            sa.Column("id", sa.Text, primary_key=True),
            sa.Column("name", sa.Text, nullable=False),
            sa.Column("hash", sa.Text, nullable=False, unique=True),
            sa.Column("shown", sa.Text, nullable=False),
            sa.Column("created", sa.Float, nullable=False),
            sa.Column("revoked", sa.Float),
        )
    if "sessions" not in present:
        op.create_table(
            "sessions",
            sa.Column("id", sa.Text, primary_key=True),
            sa.Column("owner", sa.Text),
            sa.Column("system", sa.Text),
            sa.Column("messages", sa.Text, nullable=False),
            sa.Column("metadata", sa.Text, nullable=False),
            sa.Column("created", sa.Float, nullable=False),
            sa.Column("updated", sa.Float, nullable=False),
        )
    if "responses" not in present:
        op.create_table(
            "responses",
            sa.Column("id", sa.Text, primary_key=True),
            sa.Column("owner", sa.Text),
            sa.Column("messages", sa.Text, nullable=False),
            sa.Column("response", sa.Text, nullable=False),
            sa.Column("created", sa.Float, nullable=False),
        )


def downgrade() -> None:
    for table in ("responses", "sessions", "api_keys"):
        op.drop_table(table)
