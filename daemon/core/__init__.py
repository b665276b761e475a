"""Shared ground for every feature: config, errors, progress, marks, the working-day calendar,
settings, the pid file, private paths, and the jobs and delivery registries.
"""
