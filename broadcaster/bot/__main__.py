"""`python -m broadcaster.bot --room R` is `broadcaster serve bot --room R`."""

import sys

from broadcaster.cli import main

sys.exit(main(["serve", "bot", *sys.argv[1:]]))
