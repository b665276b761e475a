"""Page content: who has a page, view models per role, charts, and the pages assembled and
rendered class by class."""
