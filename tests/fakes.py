"""Fakes of the embeddings API and Message Queue as httpx MockTransport handlers: deterministic vectors
(the loopback emulator's), counted calls, recorded messages.

Used where a test needs the whole pipeline and exact call counts; API fault behaviour itself is
tested with respx in test_embeddings.py.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Awaitable, Callable

import httpx

from testkit.yandex_emulator import vector_for


class FakeEmbeddingsAPI:
    def __init__(self, dimensions: int = 256, max_chars: int | None = None) -> None:
        self.dimensions = dimensions
        self.max_chars = max_chars  # texts longer than this get Yandex's "too many tokens" 400
        self.texts: Counter[str] = Counter()
        self.requests = 0
        self.authorizations: set[str] = set()
        self.models: set[str] = set()  # every model asked for
        self.fail: Callable[[str], httpx.Response | None] = lambda _text: None

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)

    @property
    def embedded(self) -> int:
        """Successful embeddings: what was billed."""
        return sum(self.texts.values())

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        self.authorizations.add(request.headers.get("Authorization", ""))
        body = json.loads(request.content)
        text = body["input"]
        self.models.add(body["model"])
        failure = self.fail(text)
        if failure is not None:
            return failure
        if self.max_chars is not None and len(text) > self.max_chars:
            return httpx.Response(
                400, json={"error": {"message": "number of input tokens must be no more than 2048, got 2301"}}
            )
        self.texts[text] += 1
        tokens = max(1, len(text) // 4)
        return httpx.Response(
            200,
            json={
                "object": "list",
                "data": [{"object": "embedding", "index": 0, "embedding": vector_for(text, self.dimensions)}],
                "model": body["model"],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )


class FakeMessageQueue:
    """Yandex Message Queue's SendMessage and SendMessageBatch as an httpx MockTransport handler,
    recording what was sent (one entry per message, as SendMessage's form would name it). A test
    that plays the trigger takes messages with `take` and hands them to the function itself."""

    def __init__(self) -> None:
        self.sent: list[dict[str, str]] = []
        self.requests: list[httpx.Request] = []
        self._taken = 0

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)

    @property
    def bodies(self) -> list[str]:
        return [form["MessageBody"] for form in self.sent]

    def take(self) -> list[str]:
        """The bodies sent since the last `take`."""
        taken, self._taken = self.bodies[self._taken :], len(self.sent)
        return taken

    def __call__(self, request: httpx.Request) -> httpx.Response:
        from urllib.parse import parse_qsl  # noqa: PLC0415 - only this fake needs it

        self.requests.append(request)
        form = dict(parse_qsl(request.content.decode()))
        if form.get("Action") == "SendMessageBatch":
            entries = []
            for number in range(1, 11):
                entry = f"SendMessageBatchRequestEntry.{number}."
                if entry + "Id" not in form:
                    break
                message = {"Action": "SendMessage", "MessageBody": form[entry + "MessageBody"]}
                if entry + "DelaySeconds" in form:
                    message["DelaySeconds"] = form[entry + "DelaySeconds"]
                self.sent.append(message)
                entries.append(
                    f"<SendMessageBatchResultEntry><Id>{form[entry + 'Id']}</Id>"
                    f"<MessageId>msg-{len(self.sent)}</MessageId></SendMessageBatchResultEntry>"
                )
            return httpx.Response(
                200,
                content=(
                    f"<SendMessageBatchResponse><SendMessageBatchResult>{''.join(entries)}"
                    "</SendMessageBatchResult></SendMessageBatchResponse>"
                ).encode(),
            )
        self.sent.append(form)
        message_id = f"msg-{len(self.sent)}"
        return httpx.Response(
            200,
            content=(
                "<SendMessageResponse><SendMessageResult><MD5OfMessageBody>x</MD5OfMessageBody>"
                f"<MessageId>{message_id}</MessageId></SendMessageResult></SendMessageResponse>"
            ).encode(),
        )


Hook = Callable[[httpx.Request], Awaitable[None]]


class HookedTransport(httpx.AsyncBaseTransport):
    """The real transport to Object Storage, with a hook that runs once before the first request a
    test picks: forces an interleaving (an upload between two reads, a run finishing first) without
    sleeps."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self._hooks: list[tuple[Callable[[httpx.Request], bool], Hook]] = []
        self.fired: list[str] = []

    def before(self, matches: Callable[[httpx.Request], bool], hook: Hook) -> None:
        self._hooks.append((matches, hook))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        for entry in list(self._hooks):
            matches, hook = entry
            if matches(request):
                self._hooks.remove(entry)
                self.fired.append(f"{request.method} {request.url.path}")
                await hook(request)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def request_to(method: str, path_suffix: str, *, nth: int = 1) -> Callable[[httpx.Request], bool]:
    """A request matcher: the `nth` request with this method and a path ending so (percent-decoded)."""
    seen = 0

    def matches(request: httpx.Request) -> bool:
        nonlocal seen
        from urllib.parse import unquote  # noqa: PLC0415 - only this helper needs it

        if request.method == method and unquote(request.url.path).endswith(path_suffix):
            seen += 1
            return seen == nth
        return False

    return matches
