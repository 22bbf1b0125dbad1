"""JSON read so that the numbers no JSON holds stay visible: `NaN`, `Infinity`, `-Infinity` and a
number too large for a double (`1e999`), which Python's parser accepts as floats, come out as
`NotFinite`, for whoever validates the value to refuse, naming the field (jsonb holds none).

Here, in the core, so that both the HTTP layer, which reads bodies this way, and the core's own
validators (a search filter's) know the same marker.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class NotFinite:
    """A number in a JSON document that no JSON (and no jsonb) holds, as it was written."""

    literal: str


def loads_finite(document: str | bytes) -> Any:
    """`document` parsed, with a `NotFinite` in place of each number no JSON holds."""
    return json.loads(document, parse_constant=NotFinite, parse_float=_finite_float)


def _finite_float(literal: str) -> float | NotFinite:
    value = float(literal)
    return value if math.isfinite(value) else NotFinite(literal)
