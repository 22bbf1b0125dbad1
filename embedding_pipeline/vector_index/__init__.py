"""The vector index: the records of every document, searchable, in PostgreSQL with pgvector.

Optional (VECTOR_DB_DSN), and derived: Object Storage stays the source of truth. A document's rows
are replaced in one transaction once its manifest stands; a failed write leaves the outputs in the
bucket as they are and marks the document for the next reconcile, which also finds and repairs
drift (rows of another version, rows whose document is gone). `embedpipe reindex` rebuilds it all.

    postgres.py     the index: a document's rows in and out, the summary, nearest neighbours
    queries.py      the summary's SQL, built from its filters; a search's Hit
    search_sql.py   a search's SQL: vector, keyword or hybrid (reciprocal rank fusion), one round trip
    keywords.py     each chunk's keyword form and a query's, case folded in Python; codes kept whole
    filters.py      a search's filter ($eq $ne $gt… $in $exists $and $or) read, bounded, compiled to SQL
    schema.py       the table and its indexes, made on first use; pgvector's binary vector form
    connections.py  the instance's pool, opened on first use, over TLS when a CA is configured
    failures.py     the one boundary: the driver's failures as VectorIndexError, with no DSN or password
    rows.py         a records object's lines as index rows, without what PostgreSQL would refuse
    follow.py       keeping it in step as the bucket changes (after a manifest stands, after a delete)
    repair.py       reconcile's repair: the index's summary against the bucket's listing
    search.py       a question in, the best chunks out (the HTTP route and the CLI)

asyncpg is imported only when an index is configured and first used: no other route pays for it.
"""
