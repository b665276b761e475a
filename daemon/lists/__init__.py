"""Class lists: export to spreadsheets for class teachers and import of their corrections."""
