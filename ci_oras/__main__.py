"""Allow ``python -m ci_oras``."""

from ci_oras.cli import main

main()
