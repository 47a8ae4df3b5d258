"""``python -m imggate``."""

from imggate._cli import main

main()
