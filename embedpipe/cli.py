"""`embedpipe` (or `python -m embedpipe`): the pipeline from the command line.

    run                    the local stack (make run)
    invoke EVENT.json      index.handler on an event, with a realistic context
    generate-event KIND    a well-formed storage, queue, timer or http event
    embed PATH...          embed files or folders into the bucket (or --out DIR)
    search "query"         the stored chunks nearest to a query: from the vector index when one is
                           configured (VECTOR_DB_DSN), else by scanning the records
    reindex                rebuild the vector index from the bucket's records
    status                 sources, manifests, errors, checkpoints, the last reconcile report
    put / ls / cat / rm    objects in the bucket

Each command talks to the services the environment names (the function's settings: S3_ENDPOINT and
keys, YC_IAM_TOKEN or YC_API_KEY...) and to the local stack (`make run`) for what it leaves unset;
embedpipe/services.py says how. How a command ends (exit statuses, one line on stderr, --debug for
a traceback): embedpipe/exits.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from devstack import events, stack
from devstack.context import iam_token_context
from embedpipe.exits import closed_output, debugging, guarded
from embedpipe.parser import build_parser
from embedpipe.services import Services, point_at

# What each command needs besides its own arguments (`embed` decides for itself: see `_target`).
_NEEDS_STORAGE = {"invoke", "search", "reindex", "status", "put", "ls", "cat", "rm"}
_NEEDS_EMBEDDINGS = {"invoke", "search"}


def _target(args: argparse.Namespace) -> Services:
    if args.command == "embed":
        if args.out is not None:
            return point_at(needs_storage=False, needs_embeddings=True)
        target = point_at(needs_storage=True, needs_embeddings=False)
        if not target.trigger_embeds_uploads:  # then this process embeds
            target = point_at(needs_storage=True, needs_embeddings=True)
        return target
    # A keyword search asks the embeddings API nothing.
    embeds = args.command in _NEEDS_EMBEDDINGS and getattr(args, "mode", None) != "keyword"
    return point_at(needs_storage=args.command in _NEEDS_STORAGE, needs_embeddings=embeds)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(__doc__.split("\n\n")[0])
    try:
        args = parser.parse_args(argv)
    except BrokenPipeError:  # `embedpipe --help | head -1`
        return closed_output()
    return guarded(args.command, lambda: _run(args), debug=debugging(args.debug))


def _run(args: argparse.Namespace) -> int:
    if args.command == "run":
        return stack.run(args)
    if args.command == "generate-event":
        print(json.dumps(events.generate(args), ensure_ascii=False, indent=2))
        return 0
    target = _target(args)
    if args.command == "invoke":
        return invoke(args.event, args.timeout_s)
    from embedding_pipeline.logs import configure_logging  # noqa: PLC0415
    from embedpipe import tools  # noqa: PLC0415 - loads the pipeline and its settings

    # The pipeline's log lines go to stderr, so that stdout holds only the command's result
    # (`embedpipe embed docs/ | jq`); warnings and errors by default, everything with --debug.
    level = "DEBUG" if debugging(args.debug) else os.environ.get("EMBEDPIPE_LOG_LEVEL", "WARNING")
    configure_logging(level.upper(), stream=sys.stderr)
    return asyncio.run(tools.run_command(args, target))


def invoke(path: Path, timeout_s: float) -> int:
    if str(path) == "-" and sys.stdin.isatty():
        print("embedpipe invoke: reading the event from standard input (Ctrl-D ends it)", file=sys.stderr)
    try:
        raw = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
        event: Any = json.loads(raw)
    except (OSError, ValueError) as exc:
        print(f"embedpipe invoke: cannot read an event from {path}: {exc}", file=sys.stderr)
        return 2
    # Reads the settings now, from this environment: a bad one is a ConfigurationError, one line
    # (after the function's own `configuration_invalid` log line, as the platform would show it).
    import index  # noqa: PLC0415

    context = iam_token_context(os.environ.get("YC_IAM_TOKEN"), timeout_s=timeout_s)
    started = time.monotonic()
    try:
        reply = index.handler(event, context)
    except Exception as exc:  # the platform would retry: say so and fail
        print(
            f"invocation raised {type(exc).__name__}: {exc} (a trigger would deliver it again)",
            file=sys.stderr,
        )
        return 1
    print(json.dumps(reply, ensure_ascii=False, indent=2))
    print(f"# {time.monotonic() - started:.2f} s", file=sys.stderr)
    return 0
