"""`embedpipe reindex`: the vector index rebuilt from the bucket's records, a page at a time.

Every document with a manifest in the output bucket (sources and inline texts alike) is written
afresh, and rows of documents without one are removed. `recreate` drops the table first (after a
change of EMBEDDINGS_DIMENSIONS). Pages run over the output area's documents in key order, so
memory does not grow with the bucket.
"""

from __future__ import annotations

from typing import Any

from embedding_pipeline.errors import ConfigurationError
from embedding_pipeline.invocation import Invocation
from embedding_pipeline.logs import get_logger
from embedding_pipeline.pipeline.reconcile.inventory import PageInventory, documents_range, list_outputs
from embedding_pipeline.pipeline.reconcile.order import server_order
from embedding_pipeline.pipeline.reconcile.ranges import KeyRange
from embedding_pipeline.pipeline.reconcile.totals import Totals

log = get_logger()


async def rebuild_index(invocation: Invocation, bucket: str, *, recreate: bool = False) -> dict[str, Any]:
    from embedding_pipeline.vector_index.repair import IndexPage, repair  # noqa: PLC0415

    index = invocation.vector_index
    if index is None:
        raise ConfigurationError("no vector index is configured: set VECTOR_DB_DSN")
    if recreate:
        await index.drop()
    outputs = invocation.outputs(bucket)
    layout, storage = outputs.layout, invocation.storage
    totals = Totals()
    order = await server_order(storage, layout, may_write=True)
    assert order is not None
    rest = KeyRange("", order=order)
    while True:
        page, last = await documents_range(
            storage, layout, rest, layout.records_and_manifests, invocation.settings.reconcile_page_size
        )
        inventory = PageInventory(page, last)
        await list_outputs(
            storage, layout, page, inventory, areas=(layout.records_and_manifests, layout.index_marks)
        )
        repaired = await repair(
            index,
            storage,
            outputs,
            records=inventory.records,
            manifests=set(inventory.manifests),
            marked=inventory.index_marks,
            deadline=invocation.deadline,
            rebuild=True,
            page=IndexPage(page.prefix, page.after, page.through, slash_first=order.name == "slash-first"),
        )
        totals.index_add(repaired.report())
        if last or repaired.stopped_by is not None:
            break
        rest = KeyRange("", page.through, order=order)
    report = totals.index or {}
    log.info("index_rebuilt", bucket=bucket, **{k: v for k, v in report.items() if k != "errors"})
    return report
