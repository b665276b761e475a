"""The long-running daemon: the scheduler of pulls, builds, outbox flushes, backups and
deadline checks.
"""
