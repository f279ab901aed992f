"""image detectors: place-name lists, each image's hash and read text, PDQ hash banks

Revision ID: 0011
Revises: 0008, 0002 (its place names belong to the rules table 0002 made, so it merges the two;
`depends_on` would do, but leaves 0002 a head Alembic never records as applied)
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import monitor.models

revision: str = "0011"
down_revision: str | tuple[str, ...] | None = ("0008", "0002")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_S = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table(
        "place_names",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rule_id", sa.Integer(), nullable=False),
        sa.Column("name", _S(length=300), nullable=False),
        sa.ForeignKeyConstraint(["rule_id"], ["moderation_rules.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("place_names", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_place_names_rule_id"), ["rule_id"], unique=False)
    op.create_table(
        "image_facts",
        sa.Column("media_id", sa.Integer(), nullable=False),
        sa.Column("post_id", sa.Integer(), nullable=False),
        sa.Column("pdq", _S(length=64), nullable=True),
        sa.Column("pdq_quality", sa.Integer(), nullable=True),
        sa.Column("picture", sa.Integer(), nullable=False),
        sa.Column("read_text", sa.Text(), nullable=True),
        sa.Column("analysed_at", monitor.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["media_id"], ["media.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["post_id"], ["posts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("media_id"),
    )
    with op.batch_alter_table("image_facts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_image_facts_post_id"), ["post_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_image_facts_picture"), ["picture"], unique=False)
    op.create_table(
        "hash_banks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", _S(length=20), nullable=False),
        sa.Column("name", _S(length=200), nullable=False),
        sa.Column("created_at", monitor.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by", _S(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("hash_banks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_hash_banks_kind"), ["kind"], unique=False)
    op.create_table(
        "hash_bank_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("bank_id", sa.Integer(), nullable=False),
        sa.Column("pdq", _S(length=64), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("post_id", sa.Integer(), nullable=True),
        sa.Column("added_at", monitor.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["bank_id"], ["hash_banks.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["post_id"], ["posts.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("hash_bank_entries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_hash_bank_entries_bank_id"), ["bank_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_hash_bank_entries_post_id"), ["post_id"], unique=False)


def downgrade() -> None:
    op.drop_table("hash_bank_entries")
    op.drop_table("hash_banks")
    op.drop_table("image_facts")
    op.drop_table("place_names")
