"""PDFs: the WeasyPrint engine with the shipped fonts (`engine`), paper extracts, credential
slips and analytics reports."""
