"""Errors shared by every part of otmetka.

The CLI catches `OtmetkaError`, prints its message and exits 1 without a traceback, so
every subclass must carry a message an operator can act on.
"""


class OtmetkaError(Exception):
    """A user-facing error: the message says what is wrong and how to fix it."""
