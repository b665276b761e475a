"""Rendering side: page content, encryption, the build pipeline and the PDFs, over the
database layer only."""
