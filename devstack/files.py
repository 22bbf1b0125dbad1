"""Put, list and read objects in the local stack's bucket: `python -m devstack.files put|ls|cat|rm`.

Reads the same defaults as `make run` (LOCAL_S3_PORT, LOCAL_BUCKET) and the stack's local keys.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from devstack.s3server import LOCAL_ACCESS_KEY, LOCAL_SECRET_KEY, S3Access
from devstack.watcher import run_with_storage
from embedding_pipeline.storage import ObjectStorage


def local_access() -> S3Access:
    port = int(os.environ.get("LOCAL_S3_PORT", "8333"))
    return S3Access(f"http://127.0.0.1:{port}", LOCAL_ACCESS_KEY, LOCAL_SECRET_KEY)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.files", description=__doc__.split("\n\n")[0])
    parser.add_argument("--bucket", default=os.environ.get("LOCAL_BUCKET", "local-docs"))
    commands = parser.add_subparsers(dest="command", required=True)
    put = commands.add_parser("put", help="upload a local file to KEY")
    put.add_argument("path", type=Path)
    put.add_argument("key")
    listing = commands.add_parser("ls", help="list keys under a prefix")
    listing.add_argument("prefix", nargs="?", default="")
    cat = commands.add_parser("cat", help="print an object")
    cat.add_argument("key")
    remove = commands.add_parser("rm", help="delete an object")
    remove.add_argument("key")
    args = parser.parse_args(argv)
    s3, bucket = local_access(), args.bucket

    async def work(storage: ObjectStorage) -> int:
        if args.command == "put":
            await storage.put(bucket, args.key, args.path.read_bytes())
            print(f"s3://{bucket}/{args.key}")
        elif args.command == "ls":
            async for info in storage.list_objects(bucket, args.prefix):
                print(f"{info.size:>10}  {info.key}")
        elif args.command == "cat":
            data = await storage.get(bucket, args.key, max_bytes=256 * 1024 * 1024)
            if data is None:
                print(f"no such key: {args.key}", file=sys.stderr)
                return 1
            sys.stdout.buffer.write(data)
        else:
            await storage.delete(bucket, args.key)
        return 0

    code: int = run_with_storage(s3, work)
    return code


if __name__ == "__main__":
    sys.exit(main())
