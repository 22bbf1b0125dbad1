"""Secrets out of every text that leaves the process: log lines, error records, `_index/` marks,
reconcile reports and HTTP replies all pass their error texts through `redact`.

It masks, in any text:
- the password of any URL or DSN, `scheme://user:password@host`: everything from the `:` after the
  user name to the **last** `@` on the line (at most 512 characters on), so that a password holding
  `/`, `#`, `?`, `@`, `:`, `%` or spaces, which break URL parsing (and which drivers then echo in
  their parse errors), is masked whole. A URL with a port and an `@` later on the same line loses
  what lies between them: masking too much is the safe side;
- `password=...` in a DSN's query or a libpq keyword string (`host=... password='p w'`);
- every secret registered at run time (IAM tokens, API keys, S3 and queue keys, the database
  password; at least 6 characters, so that a short one cannot blank out ordinary words), as it is
  and percent-encoded, as it would stand in a URL;
- anything shaped like an IAM token (`t1.`) or an API key (`AQVN`), registered or not.

Redact before cutting a text short: a DSN cut before its `@` no longer looks like one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote

MASK = "***"

# scheme://user, then `:` and everything up to the last `@` within reach on the same line.
_URL_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]{0,31}://[^\s:/?#@]*):[^\n]{0,512}@")
_KEYWORD_PASSWORD = re.compile(r"(?P<head>\bpassword\s*=\s*)(?:'(?:[^'\\\n]|\\.)*'|[^&\s]+)", re.IGNORECASE)
# IAM tokens start with "t1." and API keys with "AQVN"; masked even if nobody registered them.
_SECRET_SHAPES = re.compile(r"\bt1\.[A-Za-z0-9_.\-]{16,}|\bAQVN[A-Za-z0-9_\-]{20,}")
_SHORTEST_SECRET = 6

_known_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Mask this value (and its percent-encoded form) wherever it appears from now on."""
    if value and len(value) >= _SHORTEST_SECRET:
        _known_secrets.add(value)
        _known_secrets.add(quote(value, safe=""))


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """`text` with credentials masked: URL and DSN passwords, `password=` values, the registered
    secrets and `secrets` verbatim (those of at least 6 characters), and token-shaped strings."""
    # Longest first: a secret inside another (a password within a DSN, say) must not break the
    # longer one apart and leave the rest of it standing.
    for secret in sorted({*_known_secrets, *(s for s in secrets if s)}, key=len, reverse=True):
        if len(secret) >= _SHORTEST_SECRET and secret in text:
            text = text.replace(secret, MASK)
    text = _URL_PASSWORD.sub(rf"\g<head>:{MASK}@", text)
    text = _KEYWORD_PASSWORD.sub(rf"\g<head>{MASK}", text)
    return _SECRET_SHAPES.sub(MASK, text)
