"""`python -m devstack`: the local stack (what `make run` starts; `embedpipe run` is the same)."""

import argparse
import sys

from devstack import stack

parser = argparse.ArgumentParser(prog="python -m devstack", description=stack.__doc__.split("\n\n")[0])
stack.add_arguments(parser)
sys.exit(stack.run(parser.parse_args(sys.argv[1:])))
