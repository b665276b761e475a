"""Paper: printing extracts and credential slips, analytics reports as PDF."""
