"""PDFs: the WeasyPrint engine with the shipped fonts (`engine`), credential slips
(`slips`) and the encrypted copy of a class's extracts on the class teacher's page
(`files`). The extracts themselves are in `site_builder.extracts`.

`files` must stay importable without WeasyPrint: the site builder uses it on every build.
"""
