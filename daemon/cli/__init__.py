"""The command line: one click group, one module per command group; each command parses options
and calls one library function.
"""
