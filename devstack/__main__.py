"""`python -m devstack`: the command-line tool (see devstack/cli.py)."""

import sys

from devstack.cli import main

sys.exit(main())
