"""The root of every error an operator can act on.

It lives at the bottom of the layers so that every layer (db, site_builder, daemon) can
raise it; the CLI catches it, prints its message and exits 1 without a traceback.
"""

from __future__ import annotations


class OtmetkaError(Exception):
    """A user-facing error: the message says what is wrong and how to fix it."""
