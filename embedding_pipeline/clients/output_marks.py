"""Every object the function writes under OUTPUT_PREFIX says so in its user metadata, so that no
deployment takes it for a source: a second deployment whose SOURCE_PREFIX covers this one's outputs
reads the mark on the HEAD it makes before embedding anything, and refuses the object.

    x-amz-meta-embedpipe-area        the OUTPUT_PREFIX it was written under
    x-amz-meta-embedpipe-deployment  the deployment that wrote it (DEPLOYMENT_NAME, else the function)
"""

from __future__ import annotations

from dataclasses import dataclass

AREA = "embedpipe-area"
DEPLOYMENT = "embedpipe-deployment"
_META = "x-amz-meta-"


@dataclass(frozen=True, slots=True)
class OutputMarks:
    prefix: str  # OUTPUT_PREFIX: keys under it are outputs
    deployment: str

    def headers(self, key: str) -> dict[str, str]:
        """The metadata headers a write of `key` carries (none for a key outside the outputs)."""
        if not key.startswith(self.prefix):
            return {}
        return {_META + AREA: _ascii(self.prefix), _META + DEPLOYMENT: _ascii(self.deployment)}


def user_metadata(headers: dict[str, str] | object) -> dict[str, str]:
    """The `x-amz-meta-*` headers of an answer, by their names after the prefix (lower case), values
    decoded where a client wrote non-ASCII as RFC 2047 encoded-words (`=?UTF-8?B?...?=`)."""
    items = headers.items() if hasattr(headers, "items") else ()
    return {
        name.lower().removeprefix(_META): _decoded(value)
        for name, value in items
        if name.lower().startswith(_META)
    }


def _decoded(value: str) -> str:
    """An encoded-word header value as the text it encodes; any other value as it came."""
    if "=?" not in value:
        return value
    from email.errors import HeaderParseError  # noqa: PLC0415 - rare: only encoded values need it
    from email.header import decode_header, make_header  # noqa: PLC0415

    try:
        return str(make_header(decode_header(value)))
    except (HeaderParseError, LookupError, UnicodeDecodeError, ValueError):
        return value  # not a well-formed encoded-word after all: kept as written


def _ascii(value: str) -> str:
    """Header values are ASCII: anything else is written as its escape."""
    return value.encode("ascii", "backslashreplace").decode("ascii")
