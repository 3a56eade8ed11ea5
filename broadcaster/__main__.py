"""`python -m broadcaster` is the `broadcaster` command."""

import sys

from broadcaster.cli import main

sys.exit(main())
