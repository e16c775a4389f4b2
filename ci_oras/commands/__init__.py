"""Commands that live in their own module register themselves on ``ci_oras.cli.app`` when imported.

``cli.py`` imports them at its end; each module imports only ``app``, ``command`` and ``Options`` from
``cli`` at top level and everything heavy inside the command body, so start-up stays small.
"""
