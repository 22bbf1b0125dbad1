"""Reading the embeddings API's answers: the vector of a 200, and what a refusal says.

A 200 is trusted only as far as it is checked: a vector must be a list of finite numbers (Python's
json reads `NaN` and `Infinity`, and `array('d')` takes `true` as 1.0, yet strict JSON parsers reject
the records and replies they would end up in). A refusal is read for the few answers whose wording
is known, so that only those decide anything on their own:

- too long (split the text): Yandex AI Studio's `number of input tokens must be no more than 2048, got
  2301` and `text length is N, which is outside the range (0, M]`; OpenAI's `maximum context length`.
- the model is unknown or unusable (a setting, not a text): Yandex's `invalid model_uri`, `Failed to
  parse model URI`, `Failed to get model`, `Specified folder ID ... does not match with service account
  folder ID` (all 400, per AI Studio's error-code table); OpenAI's `The model ... does not exist`.
"""

from __future__ import annotations

import math
import re
from array import array
from dataclasses import dataclass
from typing import Any

import httpx

from embedding_pipeline.errors import EmbeddingsError
from embedding_pipeline.redact import redact

TOO_LONG = re.compile(
    r"number of input tokens must be no more than"
    r"|text length is \d+, which is outside the range"
    r"|maximum context length",
    re.IGNORECASE,
)
MODEL_REFUSED = re.compile(
    r"invalid model_?uri"
    r"|failed to (?:parse|get) model"
    r"|does not match with service account folder"
    r"|unknown model"
    r"|model\b[^.]{0,120}?\b(?:not found|does not exist|is not available)",
    re.IGNORECASE,
)
DIMENSIONS = re.compile(r"dimension", re.IGNORECASE)
_MESSAGE_LIMIT = 300


@dataclass(frozen=True, slots=True)
class Embedding:
    # float64, as the API sent them: records must be byte-identical across runs.
    vector: array[float]
    tokens: int


def read_embedding(response: httpx.Response) -> Embedding:
    """The vector and billed tokens of a 200; EmbeddingsError if it holds anything but finite numbers."""
    try:
        payload = response.json()
        raw = payload["data"][0]["embedding"]
    except (ValueError, KeyError, IndexError, TypeError, RecursionError):
        raise EmbeddingsError("embeddings API answered 200 without an embedding") from None
    # bool is an int to Python, and array("d") would take True as 1.0: only real numbers pass.
    if not isinstance(raw, list) or not all(type(value) in (float, int) for value in raw):
        raise EmbeddingsError("embeddings API answered 200 with an embedding that is not a list of numbers")
    try:
        vector = array("d", raw)
    except OverflowError:
        raise EmbeddingsError("embeddings API answered 200 with a number out of range") from None
    if not all(map(math.isfinite, vector)):
        raise EmbeddingsError("embeddings API answered 200 with NaN or infinity in the embedding")
    return Embedding(vector, usage_tokens(payload))


def usage_tokens(payload: Any) -> int:
    usage = payload.get("usage") if isinstance(payload, dict) else None
    if not isinstance(usage, dict):
        return 0
    for name in ("total_tokens", "prompt_tokens"):
        value = usage.get(name)
        if isinstance(value, int | str) and not isinstance(value, bool) and str(value).isdigit():
            return int(value)
    return 0


def error_message(response: httpx.Response) -> str:
    """The API's own words, from OpenAI's or Yandex's error shape, cut short and redacted."""
    try:
        return redact(_words(response.json())[:_MESSAGE_LIMIT])
    except (ValueError, RecursionError):  # not JSON, or nested past any real error's depth
        return redact(response.text[:_MESSAGE_LIMIT])


def _words(payload: Any) -> str:
    error = payload.get("error", payload) if isinstance(payload, dict) else payload
    if isinstance(error, dict):
        return str(error.get("message") or error.get("details") or error)
    return str(error)
