"""How many inputs one POST /v1/embeddings may hold, decided before any text is paid for.

OpenAI's clients send batches of up to 2,048 inputs (LangChain's `OpenAIEmbeddings` 1,000 by
default, LlamaIndex's `OpenAIEmbedding` 100). Yandex embeds one text per request at the folder's
quota, so a batch is paced inside one invocation, and two things bound it:
- the reply: API Gateway passes at most 2.5 MB (REPLY_LIMIT_BYTES keeps a margin). A 256-long
  vector is about 1.4 KB as base64 (what the openai client asks for by default), 5.7 KB as JSON
  floats: some 1,680 vectors fit as base64, 420 as floats;
- the time: the distinct texts at the instance's pace must end before the invocation's deadline
  (2,048 texts at 10 a second take about 205 s).

A batch over either is a 413 saying how many inputs fit and which client setting sends fewer. A
413, because openai's clients (and so LangChain's and LlamaIndex's) do not retry it (they retry
408, 409, 429 and 5xx), and the same batch would fail the same way every time.
"""

from __future__ import annotations

import math

from handlers.http.replies import REPLY_LIMIT_BYTES, HttpError

# One item's JSON around its vector: {"object":"embedding","index":2047,"embedding":...},
_ITEM_BYTES = 56
_JSON_FLOAT_BYTES = 22  # a float32 as JSON text, with its comma: at most this, usually fewer
# The pace's time, plus this share for the answers and the 429s that slow it: 1,000 texts at 10 a
# second took 104 s against the loopback emulator (its quota enforced, 10 answered 429).
_OVER_PACE = 1.1

FEWER_INPUTS = (
    "send at most {fit} inputs per request (LangChain: OpenAIEmbeddings(chunk_size={fit}); "
    "LlamaIndex: OpenAIEmbedding(embed_batch_size={fit}))"
)


def reply_bytes_per_input(dimensions: int, encoding_format: str) -> int:
    """An upper bound of one input's share of the reply."""
    if encoding_format == "float":
        return _ITEM_BYTES + dimensions * _JSON_FLOAT_BYTES
    return _ITEM_BYTES + 4 * math.ceil(4 * dimensions / 3)  # float32 bytes, base64-encoded


def check_reply_size(inputs: int, dimensions: int, encoding_format: str) -> None:
    per_input = reply_bytes_per_input(dimensions, encoding_format)
    if inputs * per_input <= REPLY_LIMIT_BYTES:
        return
    fit = REPLY_LIMIT_BYTES // per_input
    hint = ""
    if encoding_format == "float":
        as_base64 = REPLY_LIMIT_BYTES // reply_bytes_per_input(dimensions, "base64")
        hint = f', or {as_base64} with encoding_format="base64"'
    raise HttpError(
        413,
        f"the reply would exceed API Gateway's 2.5 MB limit: {inputs} vectors of {dimensions} dimensions "
        f"as {encoding_format} do not fit, {fit} do{hint}: " + FEWER_INPUTS.format(fit=fit),
        "reply_too_large",
    )


def check_time(distinct: int, rate: float, seconds_left: float) -> None:
    """Refuse a batch whose `distinct` texts, one request each at `rate` a second, cannot all be
    embedded in `seconds_left`."""
    needed = distinct / rate * _OVER_PACE
    if needed <= seconds_left:
        return
    fit = max(1, math.floor(seconds_left / _OVER_PACE * rate))
    raise HttpError(
        413,
        f"{distinct} distinct texts take about {math.ceil(needed)} s at the embeddings API's pace "
        f"({rate:.3g} requests a second, EMBEDDINGS_RPS), and this request has "
        f"{math.floor(seconds_left)} s left: "
        + FEWER_INPUTS.format(fit=fit)
        + ", or give the HTTP function a longer timeout (Terraform: http_function_timeout_s, up to 300)",
        "batch_too_slow",
    )
