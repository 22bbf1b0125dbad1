"""The driver's failures as VectorIndexError, whose message holds neither the DSN nor its password.

`failures` is the one boundary: every use of the database runs inside it, and every exception asyncpg
can raise comes out of it as VectorIndexError (tests/test_index_error_boundary.py walks asyncpg's
exception classes to prove it), while a bug of ours goes on as it is (`_is_database_failure`).

asyncpg's own texts are kept where they help (a refused query, an unknown `sslmode`), but:
- a DSN it cannot parse is echoed in pieces (`invalid literal for int() with base 10: 'pa'` for a
  password `pa/ss`, `bad query field: 'def@host/db'` for `abc?def`): such a message loses every
  quoted fragment, and a password holding `/`, `?` or `#` unencoded, which no URL parser reads
  as the user meant, is refused before any connection with the fix named;
- every message passes through `redact.redact`, with the DSN's password (as it stands in the DSN,
  decoded, and its pieces between separators) among the secrets to mask.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import unquote

from embedding_pipeline.errors import VectorIndexError
from embedding_pipeline.logs import get_logger
from embedding_pipeline.redact import redact

log = get_logger()

_MESSAGE_LIMIT = 300
# A Python repr in a parse error: '...' or "...", escapes included.
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
_SEPARATORS = re.compile(r"[/?#@:]")
_UNENCODED_SEPARATORS = (
    "VECTOR_DB_DSN's password holds `/`, `?` or `#` unencoded, which ends the host part of a URL: "
    "percent-encode it (`urllib.parse.quote(password, safe='')`) or set it as VECTOR_DB_PASSWORD"
)


@contextmanager
def failures(what: str, dsn: str) -> Iterator[None]:
    """Every failure of the database, the driver or the network as VectorIndexError; anything else
    (a bug) as it is."""
    try:
        yield
    except VectorIndexError:
        raise
    except Exception as exc:
        if not _is_database_failure(exc):
            raise
        log.debug("vector_index_failed", action=what, error=type(exc).__name__)
        raise VectorIndexError(f"{what}: {type(exc).__name__}: {message_of(exc, dsn)}") from None


def unusable_dsn(exc: Exception, dsn: str) -> VectorIndexError:
    """The error for a DSN asyncpg refused to parse (a port that is no number, an unknown sslmode)."""
    if _password_with_separators(dsn):
        return VectorIndexError(_UNENCODED_SEPARATORS)
    # Whatever it quoted came out of the DSN: the part it could not read may be the password's.
    return VectorIndexError(f"VECTOR_DB_DSN is not usable: {_QUOTED.sub('<...>', message_of(exc, dsn))}")


def refuse_misread_password(dsn: str) -> None:
    """Raise before connecting when the DSN's password would be read as a host, port or database:
    a connection error would then name a piece of it (a port of digits, a host name)."""
    if _password_with_separators(dsn) and re.match(r"[^/?#@\s]+/", dsn.rpartition("@")[2]):
        raise VectorIndexError(_UNENCODED_SEPARATORS)


def _password_with_separators(dsn: str) -> bool:
    """Whether the DSN's password (up to its last `@`) holds a `/`, `?` or `#`: the
    URL's authority then ends inside it. Refused before connecting only when a host and a database
    follow that `@` (`user:pa/ss@host:5432/db`): `host/db?name=a@b` has no password, but an `@` in
    a query value."""
    _, found, rest = dsn.partition("://")
    if not found or "@" not in rest:
        return False
    credentials = rest.rpartition("@")[0]
    user, colon, _password = credentials.partition(":")
    return bool(colon) and not re.search(r"[/?#]", user) and re.search(r"[/?#]", credentials) is not None


def dsn_secrets(dsn: str) -> list[str]:
    """What of the DSN must never be shown: its password as written, decoded, and its pieces (a
    parser that misreads the DSN quotes a piece), those long enough to mask (redact's minimum)."""
    _, found, rest = dsn.partition("://")
    if not found or "@" not in rest:
        return []
    credentials = rest.rpartition("@")[0]
    _user, colon, password = credentials.partition(":")
    if not colon or not password:
        return []
    return [password, unquote(password), *_SEPARATORS.split(password)]


def message_of(exc: Exception, dsn: str = "") -> str:
    """The driver's message on one line, short, with the DSN's password masked wherever it shows."""
    text = " ".join(str(exc).split())
    return redact(text, dsn_secrets(dsn))[:_MESSAGE_LIMIT]


def _is_database_failure(exc: Exception) -> bool:
    """Whether `exc` is the database's, the driver's or the network's failure, not a bug of ours.

    Told by who defined its class, not by where it was raised: a class of asyncpg's own anywhere in
    its ancestry (the server's errors, and the client side's too: InterfaceError, InternalClientError
    and its ProtocolError, OutdatedSchemaCacheError..., whatever builtin they also derive from, as
    ClientConfigurationError is a ValueError and PostgresWarning a Warning), or the network's
    (OSError, TLS errors included, and TimeoutError). A builtin exception other than these
    (TypeError, KeyError, a bare ValueError) is our code's, or asyncpg's complaint that our code
    called it wrongly: a bug, which goes on named as it is rather than as an outage reconcile would
    retry forever. (asyncpg's DataError, a value it could not encode, counts as the database's:
    rows are checked before they reach it, rows.py. The ValueError of a DSN asyncpg cannot parse is
    mapped before it gets here, by `unusable_dsn` in ConnectionPool.connect.)
    """
    return isinstance(exc, OSError | TimeoutError) or any(
        cls.__module__.partition(".")[0] == "asyncpg" for cls in type(exc).__mro__
    )
