"""One request per distinct text in an invocation, however many documents in its batch hold it.

A queue batch may carry the same new text in several messages, and the documents of one batch are
embedded concurrently: without sharing, each would pay for it. The first caller makes the request;
callers that ask while it is in flight, or shortly after, get the same vector and are told they did
not pay for it (their manifests count it as reused). Finished vectors are kept for the most recent
texts only, so a large document does not keep every vector it embedded.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from embedding_pipeline.clients.embeddings import Embedding

RECENT_VECTORS = 256


class SharedEmbeddings:
    def __init__(self, recent: int = RECENT_VECTORS) -> None:
        self._recent = recent
        self._by_text: OrderedDict[tuple[str, str], asyncio.Future[Embedding]] = OrderedDict()

    async def embed(
        self, model: str, text_hash: str, request: Callable[[], Awaitable[Embedding]]
    ) -> tuple[Embedding, bool]:
        """The vector of the text, and whether this call paid for it (made the request)."""
        key = (model, text_hash)
        if (pending := self._by_text.get(key)) is not None:
            self._by_text.move_to_end(key)
            return await asyncio.shield(pending), False
        future: asyncio.Future[Embedding] = asyncio.get_running_loop().create_future()
        self._by_text[key] = future
        try:
            embedding = await request()
        except BaseException as exc:
            # Waiters fail with the same cause; nobody keeps a failed answer for a later caller.
            del self._by_text[key]
            if isinstance(exc, Exception):
                future.set_exception(exc)
                future.exception()  # marks it retrieved: no "never retrieved" warning without waiters
            else:
                future.cancel()
            raise
        future.set_result(embedding)
        self._forget_oldest()
        return embedding, True

    def _forget_oldest(self) -> None:
        done = [key for key, future in self._by_text.items() if future.done()]
        for key in done[: max(0, len(done) - self._recent)]:
            del self._by_text[key]
