"""A page's rows in the vector index brought in step with the bucket (vector_index/repair.py), within
half of the time left. It never stops the run: the index is derived."""

from __future__ import annotations

from typing import Any

from embedding_pipeline.deadline import Deadline
from embedding_pipeline.errors import StorageError, VectorIndexError
from embedding_pipeline.logs import get_logger
from embedding_pipeline.pipeline.reconcile.actions import SweepRun
from embedding_pipeline.pipeline.reconcile.inventory import INLINE, PageInventory
from embedding_pipeline.redact import redact

log = get_logger()

KEYWORDS_PER_PAGE = 2000  # rows of an older table given their keyword form per reconcile page


async def repair_page_index(
    run: SweepRun, inventory: PageInventory, with_manifest: set[str], *, skip: set[str]
) -> dict[str, Any] | None:
    """The report of the repair of this page's documents' rows; None without an index."""
    index = run.invocation.vector_index
    if index is None:
        return None
    from embedding_pipeline.vector_index.repair import IndexPage, repair  # noqa: PLC0415

    page = inventory.range
    inline_page = page.prefix.startswith(INLINE)

    def keep(document: str) -> bool:
        return page.holds(document) and (inline_page or not document.startswith(INLINE))

    try:
        repaired = await repair(
            index,
            run.invocation.storage,
            run.outputs,
            records=inventory.records,
            manifests=with_manifest,
            marked=inventory.index_marks,
            skip=skip,  # this run embeds them: their own write follows their manifest
            deadline=Deadline.after(run.invocation.deadline.remaining() / 2),
            dry_run=run.dry_run,
            page=IndexPage(
                page.prefix, page.after, page.through, keep=keep, slash_first=page.order.name == "slash-first"
            ),
        )
        report = repaired.report()
        if not run.dry_run:
            # A table made before keyword search is filled a few thousand rows a page, from the rows'
            # own text (about 1.2 ms a row): no read of the bucket, no embedding.
            filled = await index.fill_keywords(limit=KEYWORDS_PER_PAGE)
            if filled["keywords_filled"]:
                report = {**report, "keywords_filled": filled["keywords_filled"]}
    except (VectorIndexError, StorageError) as exc:
        reason = redact(str(exc))[:300]
        log.error("reconcile_index_failed", reason=reason)
        return {"error": reason}
    return report
