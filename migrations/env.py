"""Alembic environment: runs on the engine the application hands over."""

from alembic import context
from sqlmodel import SQLModel

import monitor.models  # noqa: F401  (registers every table on SQLModel.metadata)

engine = context.config.attributes["engine"]

with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
