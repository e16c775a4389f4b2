"""One module per step. A step takes open targets and plain values, does the work, and returns a frozen result.

Steps never print, read the environment or exit: ``cli/`` and ``emit/`` do. Steps do not import each other;
what several share is in ``steps/common.py`` (docs/architecture.md, "Layers").
"""
