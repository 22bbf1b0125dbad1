"""Everything httpx raises, named once: what each HTTP client catches at its one boundary.

httpx roots most of its exceptions at `HTTPError` (requests that failed, answers it could not decode,
redirects without end), but not all of them: a URL it cannot build (`InvalidURL`), a stream read
twice or after it was closed (`StreamError` and its kinds) and a cookie name set twice
(`CookieConflict`) stand on their own. A client that caught `HTTPError` alone would let those out
unmapped. Each client maps HTTPX_ERRORS to its own error (StorageError, EmbeddingsError or
OutOfTime, QueueError, CredentialsError); tests/test_error_boundaries.py enumerates `httpx.__all__`,
so an exception a later httpx adds outside these four fails a test instead of escaping a client.
"""

from __future__ import annotations

import httpx

HTTPX_ERRORS: tuple[type[Exception], ...] = (
    httpx.HTTPError,
    httpx.InvalidURL,
    httpx.StreamError,
    httpx.CookieConflict,
)
