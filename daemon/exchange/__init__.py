"""Journal data coming in: the exchange format, readers, the importer and its sources (HTTP,
inbox, OneRoster).
"""
