"""Shared ground for every feature: configuration, errors, progress, marks and the working-day
calendar.
"""
