"""CI wrappers (GitHub composite actions, ...) generated from :mod:`ci_oras.catalog`: see :mod:`.generate`."""
