"""Journal data in and out: the exchange format, readers, the importer and its sources (HTTP,
inbox, OneRoster), and the push of events upstream.
"""
