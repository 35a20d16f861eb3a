"""``python -m imgflow.cli``."""

from imgflow.cli import main

main()
