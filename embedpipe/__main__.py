"""`python -m embedpipe`: the command-line tool (see embedpipe/cli.py)."""

import sys

from embedpipe.cli import main

sys.exit(main())
