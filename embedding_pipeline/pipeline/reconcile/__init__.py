"""Reconcile a bucket: embed what is missing or stale, remove orphaned outputs, retry parked
failures, repair the vector index; a page of key range at a time, in sweeps (sweep.py).

    ranges.py     a page's key range, and where its documents' outputs lie in each output area
    inventory.py  what a page lists: its sources, and the outputs of the same range
    classify.py   what each document of the page needs (missing, stale, orphaned, parked...)
    work.py       acting on it: removals, refusal records, embedding here or through the queue
    estimate.py   a dry run's token estimate from sizes, calibrated on the bucket's own manifests
    page.py       one page end to end (sources, or inline texts)
    state.py      the sweep's state, which is also its lease (one sweep per bucket and prefix)
    results.py    what the queue's instances report back about the documents a sweep queued
    totals.py     what a sweep found and did, summed over its pages: its report
    sweep.py      the sweep: ticks, steps through the queue, pauses, the report
    dry_run.py    a sweep that writes nothing: every page walked here, estimating its cost
    reindex.py    `embedpipe reindex`: the vector index rebuilt, page by page
"""

from embedding_pipeline.pipeline.reconcile.reindex import rebuild_index
from embedding_pipeline.pipeline.reconcile.sweep import reconcile, run_step

__all__ = ["rebuild_index", "reconcile", "run_step"]
