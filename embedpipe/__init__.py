"""`embedpipe`: the operator's command-line tool (cli.py), over the function's own code."""
