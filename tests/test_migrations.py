"""The migrations build exactly the schema the models describe, on both backends.

A column added to a model without a migration (or a migration that drifts from
its model) would work in tests that create tables from the models and break a
real upgrade; Alembic's autogenerate comparison finds every such difference.
"""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

import monitor.models  # noqa: F401  (registers every table)
from monitor.db import upgrade


def _ours(name: str | None, type_: str, _parent: object) -> bool:
    """The job queue's tables (procrastinate's, on PostgreSQL) are not in our models."""
    return not (type_ == "table" and (name or "").startswith("procrastinate_"))


def _differences(engine: Engine) -> list[object]:
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={"compare_type": True, "compare_server_default": False, "include_name": _ours},
        )
        return list(compare_metadata(context, SQLModel.metadata))


def test_migrated_schema_matches_the_models(engine: Engine) -> None:
    upgrade(engine)
    assert _differences(engine) == []
