"""The HTTP endpoint: a Flask app factory that serves the site and records acts posted by
pages.
"""
