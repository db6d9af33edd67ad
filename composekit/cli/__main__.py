"""`python -m composekit.cli`."""

from . import main

main()
