"""Unit: the vector index's one error boundary (`vector_index/failures.py::failures`). Every exception
class asyncpg exposes, raised inside it, comes out as VectorIndexError with the DSN's password masked;
the network's failures too; a bug of ours comes out as itself. The model is httpx's test that no
httpcore exception leaks unmapped: a class a new asyncpg adds fails here until the boundary maps it.
"""

from __future__ import annotations

import asyncio
import builtins
import socket
import ssl
import sys
from urllib.parse import quote

import asyncpg
import asyncpg.exceptions
import pytest

from embedding_pipeline.errors import VectorIndexError
from embedding_pipeline.vector_index.failures import failures

PASSWORD = "Zq7/Xw9#Kp4"
DSN = f"postgresql://embedpipe:{quote(PASSWORD, safe='')}@db.example:6432/vectors"
MESSAGE = f"could not talk to {DSN} (user embedpipe, password {PASSWORD})"
BUILTIN_CLASSES = {value for value in vars(builtins).values() if isinstance(value, type)}


def asyncpg_exception_classes() -> list[type[BaseException]]:
    """Every exception class asyncpg exposes (attributes of `asyncpg`, `asyncpg.exceptions` and any
    asyncpg module loaded), with every subclass of theirs, exposed or not; no bare builtin."""
    modules = [module for name, module in sys.modules.items() if name.partition(".")[0] == "asyncpg"]
    found: set[type[BaseException]] = set()
    for module in (asyncpg, asyncpg.exceptions, *modules):
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, BaseException) and value not in BUILTIN_CLASSES:
                found.add(value)
    unvisited = list(found)
    while unvisited:
        for subclass in unvisited.pop().__subclasses__():
            if subclass not in found:
                found.add(subclass)
                unvisited.append(subclass)
    return sorted(found, key=lambda cls: (cls.__module__, cls.__qualname__))


ASYNCPG_CLASSES = asyncpg_exception_classes()


def raise_inside_the_boundary(exc: BaseException) -> None:
    with failures("reading the index", DSN):
        raise exc


def leaked(text: str) -> list[str]:
    return [part for part in (PASSWORD, quote(PASSWORD, safe=""), *PASSWORD.split("/")) if part in text]


def test_the_walk_finds_the_whole_tree_client_side_included() -> None:
    assert len(ASYNCPG_CLASSES) > 250  # the server's SQLSTATE classes alone are over 250
    for expected in (
        asyncpg.PostgresError,
        asyncpg.UniqueViolationError,
        asyncpg.InterfaceError,
        asyncpg.InternalClientError,
        asyncpg.ClientConfigurationError,
        asyncpg.ProtocolError,
        asyncpg.OutdatedSchemaCacheError,
        asyncpg.UnsupportedClientFeatureError,
        asyncpg.UnsupportedServerFeatureError,
        asyncpg.TargetServerAttributeNotMatched,
        asyncpg.DataError,
        asyncpg.exceptions.InterfaceWarning,
        asyncpg.PostgresWarning,
    ):
        assert expected in ASYNCPG_CLASSES


@pytest.mark.parametrize("cls", ASYNCPG_CLASSES, ids=lambda cls: f"{cls.__module__}.{cls.__qualname__}")
def test_no_asyncpg_exception_escapes_unmapped(cls: type[BaseException]) -> None:
    # GIVEN any exception asyncpg can raise, its message echoing the DSN and the password
    exc = cls(MESSAGE)
    # WHEN it is raised inside the boundary, THEN a VectorIndexError comes out (anything else fails)
    with pytest.raises(VectorIndexError) as raised:
        raise_inside_the_boundary(exc)
    assert str(raised.value).startswith(f"reading the index: {cls.__name__}: ")
    assert not leaked(str(raised.value)), str(raised.value)
    assert raised.value.__cause__ is None
    assert raised.value.__suppress_context__  # a traceback shows no chained original


@pytest.mark.parametrize(
    "exc",
    [
        OSError(MESSAGE),
        ConnectionRefusedError(MESSAGE),
        ConnectionResetError(MESSAGE),
        socket.gaierror(MESSAGE),
        ssl.SSLCertVerificationError(MESSAGE),
        TimeoutError(MESSAGE),
    ],
    ids=lambda exc: type(exc).__name__,
)
def test_the_networks_failures_are_mapped_too(exc: Exception) -> None:
    with pytest.raises(VectorIndexError) as raised:
        raise_inside_the_boundary(exc)
    assert not leaked(str(raised.value)), str(raised.value)


@pytest.mark.parametrize(
    "exc",
    [
        TypeError("unsupported operand"),
        KeyError("chunk"),
        AttributeError("x"),
        ValueError("x"),
        RuntimeError(),
    ],
    ids=lambda exc: type(exc).__name__,
)
def test_a_bug_of_ours_is_not_disguised_as_a_database_failure(exc: Exception) -> None:
    with pytest.raises(type(exc)) as raised:
        raise_inside_the_boundary(exc)
    assert raised.value is exc


def test_a_cancellation_goes_through() -> None:
    with pytest.raises(asyncio.CancelledError):
        raise_inside_the_boundary(asyncio.CancelledError())


def test_a_vector_index_error_raised_inside_is_kept_as_it_is() -> None:
    error = VectorIndexError("the `vector` extension is not enabled")
    with pytest.raises(VectorIndexError) as raised:
        raise_inside_the_boundary(error)
    assert raised.value is error
