"""CEF escaping and length limits (Implementing ArcSight CEF, rev. 25/26, "Character encoding").

* Header fields: ``\\`` → ``\\\\`` and ``|`` → ``\\|``; a header field MUST NOT contain a
  line break, so CR and LF become a space.
* Extension values: ``\\`` → ``\\\\``, ``=`` → ``\\=``, CR → ``\\r``, LF → ``\\n``
  (a pipe needs no escape there). Keys are our fixed identifiers and are never escaped.

Beyond the spec, so that one record is always exactly one line for any reader (Python's
``str.splitlines``, syslog relays, terminals): every other character that some reader
takes as a line break or that a syslog relay may drop (C0 controls but TAB, DEL, C1
controls, U+2028, U+2029) becomes a space, and a lone surrogate becomes U+FFFD so that
the line is always valid UTF-8.

Lengths are those of the CEF key dictionary, counted as ArcSight (Java) counts them, in
UTF-16 code units, on the *unescaped* value; truncation happens before escaping and never
splits a character, so it can never leave half an escape or half a surrogate pair.
"""

from __future__ import annotations

import re

__all__ = ["escape_extension", "escape_header", "sanitize", "truncate"]

# Characters that are line breaks for some reader (str.splitlines: \v \f \x1c-\x1e \x85
# \u2028 \u2029) or other controls; CR and LF are handled by the callers.
_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_LINE_BREAK = re.compile("[\r\n]")
_HEADER_SPECIAL = re.compile(r"[\\|]")
_EXTENSION_SPECIAL = re.compile("[\\\\=\r\n]")
_EXTENSION_ESCAPES = {"\\": "\\\\", "=": "\\=", "\r": "\\r", "\n": "\\n"}
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
# Printable ASCII that needs no escape: the common case, returned as it is.
_PLAIN_HEADER = re.compile(r"[ -\[\]-{}~]*")  # all but \ and |
_PLAIN_EXTENSION = re.compile(r"[ -<>-\[\]-~]*")  # all but \ and =


def _replace_unsafe(match: re.Match[str]) -> str:
    return "\ufffd" if "\ud800" <= match.group() <= "\udfff" else " "


def sanitize(value: str) -> str:
    """Replace controls and Unicode line separators by a space, lone surrogates by U+FFFD.

    CR and LF are kept: the header and extension escapers treat them differently.
    Every replacement is one UTF-16 code unit for one, so lengths do not change.
    """
    return _UNSAFE.sub(_replace_unsafe, value) if _UNSAFE.search(value) else value


def truncate(value: str, limit: int) -> str:
    """The longest prefix of ``value`` of at most ``limit`` UTF-16 code units.

    Never splits a character (an astral character counts 2 and stays whole or goes).
    """
    if len(value) <= limit // 2:
        return value  # fast path: fits even if every character were astral
    if not _ASTRAL.search(value):
        return value[:limit]
    units = 0
    for index, char in enumerate(value):
        units += 2 if char > "\uffff" else 1
        if units > limit:
            return value[:index]
    return value


def escape_header(value: str, limit: int) -> str:
    """A CEF header field: sanitized, truncated to ``limit``, CR/LF → space, ``\\|`` escaped."""
    if len(value) <= limit and _PLAIN_HEADER.fullmatch(value):
        return value
    text = truncate(sanitize(value), limit)
    if "\r" in text or "\n" in text:
        text = _LINE_BREAK.sub(" ", text)
    if "\\" in text or "|" in text:
        text = _HEADER_SPECIAL.sub(lambda m: "\\" + m.group(), text)
    return text


def escape_extension(value: str, limit: int) -> str:
    """A CEF extension value: sanitized, truncated to ``limit``, ``\\ = CR LF`` escaped."""
    if len(value) <= limit and _PLAIN_EXTENSION.fullmatch(value):
        return value
    text = truncate(sanitize(value), limit)
    if _EXTENSION_SPECIAL.search(text):
        text = _EXTENSION_SPECIAL.sub(lambda m: _EXTENSION_ESCAPES[m.group()], text)
    return text
