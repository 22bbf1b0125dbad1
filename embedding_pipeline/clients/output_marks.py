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
    """The `x-amz-meta-*` headers of an answer, by their names after the prefix (lower case)."""
    items = headers.items() if hasattr(headers, "items") else ()
    return {
        name.lower().removeprefix(_META): value for name, value in items if name.lower().startswith(_META)
    }


def _ascii(value: str) -> str:
    """Header values are ASCII: anything else is written as its escape."""
    return value.encode("ascii", "backslashreplace").decode("ascii")
