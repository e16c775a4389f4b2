"""One module per step. A step takes open targets and plain values, does the work, and returns a frozen result.

Steps never print, read the environment or exit: ``cli.py`` and ``emit/`` do.
"""
