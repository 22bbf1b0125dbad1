"""Text that must become UTF-8: the one place that finds, refuses or escapes what cannot.

A lone surrogate (half of a UTF-16 pair, as JSON's `"\\ud800"` decodes to) has no UTF-8 form: it can
be neither hashed, nor sent to an API, nor written to a record, a log line or a reply. Where text
comes in, it is refused (`encodable`, `lone_surrogate_at`); where text only goes out to be read by
people (a parked message's body, a refused key, a log line, an echoed error), it is escaped instead
(`printable`), so that writing it never fails.
"""

from __future__ import annotations

import re

# The escapes are the regular expression's, not Python's: the source holds no surrogate itself.
_LONE_SURROGATE = re.compile("[\\ud800-\\udfff]")
NOT_ENCODABLE = "not valid Unicode: it holds a lone surrogate such as \\ud800"


def lone_surrogate_at(text: str) -> int | None:
    """Where the first lone surrogate in `text` is, or None when it has none."""
    found = _LONE_SURROGATE.search(text)
    return None if found is None else found.start()


def encodable(value: str) -> str:
    """`value`, or ValueError (NOT_ENCODABLE) when it holds a lone surrogate."""
    if lone_surrogate_at(value) is not None:
        raise ValueError(NOT_ENCODABLE)
    return value


def printable(text: str) -> str:
    """`text` with every lone surrogate written as the escape it came as (`\\ud800`): always UTF-8."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
