"""Legally significant acts: acknowledgements, consents, breach reports, from pages and from
paper.
"""
