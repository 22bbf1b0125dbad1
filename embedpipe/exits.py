"""How an `embedpipe` command ends: its exit status, and one line on stderr when it did not succeed.

    0    done
    1    done, but some documents failed (parked, refused) or the operation reported failures
    2    unusable input: a bad argument, a setting missing or invalid, the local stack not running,
         two files for one key
    124  a wait ran out (`embed --wait-timeout`): the work goes on; the line says how to check it
    130  interrupted (Ctrl-C)
    141  standard output closed early (`embedpipe status | head`): the rest is dropped silently

Tracebacks are for bugs: the failures above are one line each, and `--debug` (or EMBEDPIPE_DEBUG=1)
lets every exception show its traceback instead.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable

from devstack.running import StackError
from embedding_pipeline.errors import ConfigurationError

DONE, FAILED, USAGE, TIMED_OUT, INTERRUPTED, PIPE_CLOSED = 0, 1, 2, 124, 130, 141
DEBUG_VARIABLE = "EMBEDPIPE_DEBUG"


class CommandError(Exception):
    """Bad input to a command: printed with the command's name, exit status 2."""

    exit_status = USAGE


class WaitTimedOut(CommandError):
    """A wait ran out; the message says what is still pending and how to check it later."""

    exit_status = TIMED_OUT


class Interrupted(Exception):
    """Ctrl-C, with what the command leaves behind (the plain KeyboardInterrupt says nothing)."""


def debugging(flag: bool) -> bool:
    return flag or os.environ.get(DEBUG_VARIABLE, "").lower() in ("1", "true", "yes")


def guarded(command: str, run: Callable[[], int], *, debug: bool) -> int:
    """`run`'s exit status, or the status and one stderr line of the way it ended early."""
    try:
        status = run()
        sys.stdout.flush()  # a closed pipe shows here for output still buffered, not at shutdown
    except BrokenPipeError:
        return closed_output()
    except (KeyboardInterrupt, Interrupted) as exc:
        if debug:
            raise
        note = f": {exc}" if isinstance(exc, Interrupted) else ""
        return _say(command, f"interrupted{note}", INTERRUPTED)
    except CommandError as exc:
        if debug:
            raise
        return _say(command, str(exc), exc.exit_status)
    except (ConfigurationError, StackError) as exc:
        if debug:
            raise
        return _say(command, str(exc), USAGE)
    return status


def closed_output() -> int:
    """Standard output's reader has gone. As the Python docs advise, what is still buffered goes to
    /dev/null, not into a second error at shutdown. 141 is what a shell reports for a program that
    SIGPIPE ended (`yes | head`), so `set -o pipefail` scripts see embedpipe as any other filter;
    no line, as no filter says one. (Restoring SIGPIPE's default instead would let a write to a
    closed socket kill the process.)"""
    with contextlib.suppress(OSError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return PIPE_CLOSED


def _say(command: str, message: str, status: int) -> int:
    with contextlib.suppress(OSError):  # stderr closed as well: the status is all there is to say it
        print(f"embedpipe {command}: {message}", file=sys.stderr, flush=True)
    return status
