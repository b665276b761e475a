"""Database layer: connection, table layouts, migrations, queries. Only this package knows
table layouts; the rest of otmetka calls its functions."""

from otmetka.db.connection import close_database, database, open_database, write_transaction
from otmetka.db.migrations import migrate

__all__ = ["close_database", "database", "migrate", "open_database", "write_transaction"]
