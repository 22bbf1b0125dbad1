"""ZIP containers (DOCX, PPTX, ODP, ODT, EPUB) opened with their sizes checked before anything is inflated,
and their XML parts streamed through expat with no DTD entities, a depth cap and the clock watched.

What a crafted container can claim is checked from its directory first: how many members (read from
the end-of-central-directory record, before zipfile builds an object per member), and the declared
sizes of the members a parser means to read, added up (a slide list naming one part 10,000 times
counts it 10,000 times). The declared size can lie: inflated bytes are counted as they come.
"""

from __future__ import annotations

import io
import posixpath
import struct
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Protocol
from xml.parsers import expat

from embedding_pipeline.errors import DocumentTooLarge, UnsupportedDocument
from embedding_pipeline.stages.documents.model import Limits, Meter

# As for a DOCX body (office.py): 64 MiB of XML, all parts together, is a book of thousands of pages
# and about a second and a half of expat; a 30 MB container may declare, and hold, far more.
MAX_XML_BYTES = 64 * 1024 * 1024
# A 10,000-slide deck with notes is ~40,000 members; zipfile keeps ~0.5 KB per member.
MAX_MEMBERS = 50_000
# Real documents nest a few dozen elements deep (lists in tables in frames); the parsers keep a stack.
MAX_XML_DEPTH = 512
_READ_BYTES = 256 * 1024
_END_OF_DIRECTORY = b"PK\x05\x06"
_ZIP64_END_OF_DIRECTORY = b"PK\x06\x06"


class _Fed(Protocol):
    """What `Package.parse` feeds: an XmlReader, or a parser of its own (DOCX's body)."""

    def feed(self, chunk: bytes, *, final: bool = False) -> None: ...


class Package:
    """A ZIP container's directory, checked; its XML parts parsed on demand within MAX_XML_BYTES."""

    def __init__(self, archive: zipfile.ZipFile, kind: str, limits: Limits) -> None:
        self.kind = kind  # "PPTX", "EPUB": said in every reason
        self.meter = Meter(limits, "parsing")
        self._archive = archive
        self._read = 0

    def has(self, name: str) -> bool:
        return name in self._archive.NameToInfo

    def reserve(self, names: Iterable[str]) -> None:
        """DocumentTooLarge unless the declared sizes of `names` (missing ones skipped) fit the cap."""
        declared = sum(self._archive.NameToInfo[n].file_size for n in names if self.has(n))
        if declared > MAX_XML_BYTES:
            raise DocumentTooLarge(self._too_large("declares"))

    def read(self, name: str) -> bytes:
        """A small member's bytes (an EPUB chapter, a manifest), counted against the cap."""
        return b"".join(self._chunks(name))

    def parse(self, name: str, reader: XmlReader | _Fed) -> None:
        """Feed `reader` the XML of member `name`, streamed."""
        for chunk in self._chunks(name):
            reader.feed(chunk)
            self.meter.check_time()
        reader.feed(b"", final=True)

    def _chunks(self, name: str) -> Iterator[bytes]:
        if not self.has(name):
            raise UnsupportedDocument(f"broken {self.kind}: {name} is missing")
        info = self._archive.getinfo(name)
        if self._read + info.file_size > MAX_XML_BYTES:
            raise DocumentTooLarge(self._too_large("declares"))
        with self._archive.open(info) as stream:
            while chunk := stream.read(_READ_BYTES):
                self._read += len(chunk)
                if self._read > MAX_XML_BYTES:  # a declared size was a lie
                    raise DocumentTooLarge(self._too_large("holds"))
                yield chunk

    def _too_large(self, verb: str) -> str:
        return f"{self.kind} {verb} more than {MAX_XML_BYTES // 2**20} MiB of XML (uncompressed) to read"


@contextmanager
def open_package(data: bytes, kind: str, limits: Limits) -> Iterator[Package]:
    """The container, its member count checked first; every error of zipfile, zlib or expat raised
    inside is UnsupportedDocument naming `kind` ("broken PPTX (BadZipFile)")."""
    try:
        members = _declared_members(data)
        if members is not None and members > MAX_MEMBERS:
            raise DocumentTooLarge(f"{kind} of {members} ZIP members: at most {MAX_MEMBERS} are read")
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            if len(archive.infolist()) > MAX_MEMBERS:
                raise DocumentTooLarge(f"{kind} of over {MAX_MEMBERS} ZIP members")
            yield Package(archive, kind, limits)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, struct.error) as exc:
        raise UnsupportedDocument(f"broken {kind} ({type(exc).__name__})") from None
    except (NotImplementedError, RuntimeError, ValueError, OSError) as exc:  # unsupported compression,
        raise UnsupportedDocument(f"broken {kind} ({type(exc).__name__}: {exc})") from None  # encryption
    except expat.ExpatError as exc:
        raise UnsupportedDocument(f"broken {kind} (invalid XML: {exc})") from None


def _declared_members(data: bytes) -> int | None:
    """The member count the end-of-central-directory record declares (ZIP64's if it defers to it)."""
    at = data.rfind(_END_OF_DIRECTORY, max(0, len(data) - 65_557))
    if at < 0 or at + 22 > len(data):
        return None  # zipfile says what is wrong
    (members,) = struct.unpack_from("<H", data, at + 10)
    if members == 0xFFFF:
        at64 = data.rfind(_ZIP64_END_OF_DIRECTORY, 0, at)
        if at64 >= 0 and at64 + 56 <= len(data):
            (members,) = struct.unpack_from("<Q", data, at64 + 32)
    return int(members)


def resolve(base: str, target: str) -> str:
    """A relationship's or manifest's target, relative to the part `base`, as a member name."""
    target = target.split("#", 1)[0]
    if target.startswith("/"):
        return posixpath.normpath(target).lstrip("/")
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(base), target))
    return "" if joined.startswith("..") else joined


class XmlReader:
    """expat with namespaces ("uri}local" names), calling `start`, `end` and `text` of a subclass.

    Refused: a DTD with an internal subset or an entity declaration (the "billion laughs"), and, with
    `doctype=False` (OOXML and ODF, whose schemas forbid one), any DTD at all. expat never fetches an
    external DTD, and an entity it was not told of is an error ("undefined entity"), so no text comes
    from outside the part.
    """

    def __init__(self, kind: str, meter: Meter, *, doctype: bool = False) -> None:
        self.kind = kind
        self.meter = meter
        self.depth = 0  # open elements, the current one included
        self._doctype = doctype
        parser = expat.ParserCreate(namespace_separator="}")
        parser.buffer_text = True
        parser.StartElementHandler = self._start
        parser.EndElementHandler = self._end
        parser.CharacterDataHandler = self.text
        parser.StartDoctypeDeclHandler = self._doctype_declared
        parser.EntityDeclHandler = self._entity_declared
        self._parser = parser

    def feed(self, chunk: bytes, *, final: bool = False) -> None:
        self._parser.Parse(chunk, final)

    def start(self, name: str, attributes: dict[str, str]) -> None:
        """An element opens: `self.depth` counts it."""

    def end(self, name: str) -> None:
        """An element closes: `self.depth` still counts it."""

    def text(self, data: str) -> None:
        """Character data (entities and character references resolved)."""

    def _start(self, name: str, attributes: dict[str, str]) -> None:
        self.meter.step()
        self.depth += 1
        if self.depth > MAX_XML_DEPTH:
            raise UnsupportedDocument(f"{self.kind} XML is nested over {MAX_XML_DEPTH} elements deep")
        self.start(name, attributes)

    def _end(self, name: str) -> None:
        self.end(name)
        self.depth -= 1

    def _doctype_declared(self, _name: str, _system: str | None, _public: str | None, internal: int) -> None:
        if not self._doctype or internal:
            raise UnsupportedDocument(f"{self.kind} XML declares a DTD, which its format forbids")

    def _entity_declared(self, *_args: object) -> None:
        raise UnsupportedDocument(f"{self.kind} XML declares an entity")
