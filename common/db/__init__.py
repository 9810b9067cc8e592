"""The one place for raw database machinery, used by both apps:

- columns: bulk reads into NumPy (one bytea per column on PostgreSQL, a cursor elsewhere);
- copy: COPY into tables (binary from NumPy columns, text from Python rows);
- parallel: work on side connections, optionally sharing one exported snapshot.

Code that touches hundreds of thousands of rows uses these; SQLite, the zero-setup default, gets
portable fallbacks where a function says so.
"""

from django.db import connection


def is_postgres() -> bool:
    return connection.vendor == "postgresql"
