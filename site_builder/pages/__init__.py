"""Page content: view models per role, charts, markdown and the Jinja rendering of pages."""
