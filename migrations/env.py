"""Alembic environment: runs on the engine the application hands over.

On SQLite, foreign keys are off while migrations run: a batch operation rebuilds a
table by copying it and dropping the original, and with foreign keys on, dropping
``posts`` would cascade to every snapshot, hashtag and attachment of every post.
"""

from alembic import context
from sqlmodel import SQLModel

import monitor.models  # noqa: F401  (registers every table on SQLModel.metadata)

engine = context.config.attributes["engine"]
sqlite = engine.dialect.name == "sqlite"

with engine.connect() as connection:
    if sqlite:
        # On the driver's connection, before SQLAlchemy begins a transaction: SQLite
        # ignores this pragma inside one.
        connection.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")
    try:
        with connection.begin():
            context.configure(
                connection=connection,
                target_metadata=SQLModel.metadata,
                render_as_batch=sqlite,
                compare_type=True,
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        if sqlite:
            connection.connection.driver_connection.execute("PRAGMA foreign_keys=ON")
