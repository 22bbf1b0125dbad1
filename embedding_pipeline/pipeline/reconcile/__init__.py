"""Reconcile a bucket: embed what is missing or stale, remove orphaned outputs, retry parked
failures, repair the vector index; a page of key range at a time, in sweeps. Import the modules
themselves: this package imports nothing.

    sweep.py        the entry points: a timer's tick, a step from the queue
    state.py        the sweep's state, which is also its lease (one sweep per bucket and prefix)
    walk.py         one run's walk of the sweep it holds, a page at a time
    stopping.py     how a run stops: hands on through the queue, pauses, drains, finishes
    report.py       a run's reply and the sweep's report
    ranges.py       a page's key range, and where its documents' outputs lie in each output area
    order.py        the server's key order, which every page is judged in
    inventory.py    what a page lists: its sources, and the outputs of the same range
    classify.py     what each document of the page needs (missing, stale, orphaned, parked...)
    actions.py      acting on it: removals, refusal records, embedding here or through the queue
    page.py         one page of sources end to end
    inline_page.py  one page of inline texts whose run stopped early
    index_pages.py  a page's rows in the vector index brought in step
    results.py      what the queue's instances report back about the documents a sweep queued
    totals.py       what a sweep found and did, summed over its pages
    estimate.py     a dry run's token estimate from sizes, calibrated on the bucket's own manifests
    sampling.py     what a dry run reads to calibrate it
    dry_run.py      a sweep that writes nothing: every page walked here, estimating its cost
    reindex.py      `embedpipe reindex`: the vector index rebuilt, page by page
"""
