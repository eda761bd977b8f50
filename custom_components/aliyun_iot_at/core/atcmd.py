"""Building AT command parameters that cannot end a command early or start another.

Strings from the cloud, the user or a thing model end up inside AT commands. A quote, a comma
in an unquoted field, CR, LF, Ctrl-Z or ESC would let them cut the command short and inject
another, so such values are refused here — never escaped hopefully and sent.
"""

from __future__ import annotations

import re

from .errors import UnsafeValue

# CR and LF end a command line; Ctrl-Z (0x1A) ends and ESC (0x1B) aborts a data prompt.
_CONTROL = {chr(c) for c in range(0x20)} | {"\x7f"}


def checked(value: str, what: str, *, max_len: int | None = None, forbid: str = "") -> str:
    """``value`` when it is printable and within ``max_len`` bytes; ``UnsafeValue`` if not."""
    if not value:
        raise UnsafeValue(f"{what} is empty")
    if any(c in _CONTROL for c in value):
        raise UnsafeValue(f"{what} contains a control character")
    bad = sorted({c for c in value if c in forbid})
    if bad:
        raise UnsafeValue(f"{what} contains {''.join(bad)!r}, which this module cannot carry")
    if max_len is not None and len(value.encode()) > max_len:
        raise UnsafeValue(f"{what} is longer than {max_len} bytes")
    return value


def quoted(value: str, what: str, *, max_len: int | None = None, ascii_only: bool = True) -> str:
    """``"value"`` for a quoted string parameter (no quote inside, no control characters).

    A backslash is refused too: modules that read ``\\"`` or ``\\HH`` escapes inside quotes
    (ML302, V.250 strings) would let a trailing backslash swallow the closing quote.
    """
    checked(value, what, max_len=max_len, forbid='"\\')
    if ascii_only and not value.isascii():
        raise UnsafeValue(f"{what} contains non-ASCII characters")
    return f'"{value}"'


# Unquoted parameters: only what device triples and topics are made of. Anything else —
# a comma (next field), a semicolon (V.250: next command), a quote or a space — is refused.
_BARE_RE = re.compile(r"[A-Za-z0-9._:@/+#-]+")


def bare(value: str, what: str, *, max_len: int | None = None) -> str:
    """``value`` for an unquoted parameter: letters, digits and ``._:@/+#-`` only."""
    checked(value, what, max_len=max_len)
    if not value.isascii():
        raise UnsafeValue(f"{what} contains non-ASCII characters")
    bad = "".join(sorted({c for c in value if not _BARE_RE.fullmatch(c)}))
    if bad:
        raise UnsafeValue(
            f"{what} contains {bad!r}; unquoted it may only hold letters, digits and ._:@/+#-"
        )
    return value
