"""Which order the bucket's server lists keys in (ranges.py says why it matters, and which exist).

Two small objects, `{P}_sweeps/order/a/b` and `{P}_sweeps/order/a-b`, tell them apart: in UTF-8
byte order `a-b` comes first (`-` sorts before `/`), in a folder tree `a/b` does. They are written
once, by the first sweep that needs them, and left in place, so that later sweeps (and dry runs,
which write nothing) find the order with one listing. A listing that shows neither order stops the
sweep before it judges anything: a page judged in the wrong order would remove live outputs.
"""

from __future__ import annotations

from embedding_pipeline import foreign
from embedding_pipeline.clients.storage import ObjectStorage
from embedding_pipeline.errors import ConfigurationError
from embedding_pipeline.outputs.layout import OutputLayout
from embedding_pipeline.pipeline.reconcile.ranges import BYTES, SLASH_FIRST, KeyOrder

_PROBES = ("a/b", "a-b")


async def server_order(storage: ObjectStorage, layout: OutputLayout, *, may_write: bool) -> KeyOrder | None:
    """The listing order of the output bucket's server; None when it cannot be found without
    writing and `may_write` is False (a dry run: which then assumes byte order)."""
    folder = layout.sweep_order_probes
    listed = await _listed(storage, layout.bucket, folder)
    if set(listed) != set(_PROBES):
        if not may_write:
            return None
        for name in _PROBES:
            await storage.put(layout.bucket, folder + name, b"", content_type="text/plain")
        listed = await _listed(storage, layout.bucket, folder)
    if listed == ["a-b", "a/b"]:
        return BYTES
    if listed == ["a/b", "a-b"]:
        return SLASH_FIRST
    raise ConfigurationError(
        f"s3://{layout.bucket}/{folder}: the server listed {listed}, in neither UTF-8 byte order nor "
        "folder order; reconcile cannot page through this bucket safely"
    )


async def _listed(storage: ObjectStorage, bucket: str, folder: str) -> list[str]:
    """The probes' names in the server's order; any other object in the folder is not ours to read."""
    names = []
    async for info in storage.list_objects(bucket, folder):
        name = info.key.removeprefix(folder)
        if name in _PROBES:
            names.append(name)
        else:
            foreign.ignored(info.key, "not a key-order probe")
    return names
