"""`python -m namaskah` runs the CLI."""

from namaskah.cli import main

main()
