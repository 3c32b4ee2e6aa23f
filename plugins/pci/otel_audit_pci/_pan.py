"""Primary account numbers: find them (Luhn, ISO/IEC 7812-1 Annex B) and mask them.

A candidate is a run of 13 to 19 digits, each pair optionally separated by one space or
dash (``4111 1111 1111 1111``, ``4111-1111-1111-1111``). Every window of 13–19 digits
inside a longer run is checked too, so two card numbers written next to each other are
both found. Each Luhn-valid window keeps its first 6 and last 4 digits and has the
digits in between replaced by ``*`` (PCI DSS v4.0 req. 3.4.1: at most BIN and last four
displayed); separators are kept. The result contains no Luhn-valid window of 13–19
digits, so no full PAN survives, whatever the separators.
"""

from __future__ import annotations

import re

__all__ = ["luhn_valid", "mask_pans"]

_CANDIDATE = re.compile(r"[0-9](?:[ -]?[0-9]){12,}")
_MIN, _MAX, _KEEP_FIRST, _KEEP_LAST = 13, 19, 6, 4
_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)  # Luhn: 2d, minus 9 when above 9


def luhn_valid(digits: str) -> bool:
    """True when ``digits`` (decimal digits only) pass the Luhn check."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        total += _DOUBLED[value] if position % 2 else value
    return total % 10 == 0


def _masked_run(run: str) -> str | None:
    """``run`` with every Luhn-valid 13–19 digit window masked, or None when none is."""
    where = [i for i, char in enumerate(run) if "0" <= char <= "9"]
    values = [ord(run[i]) - 48 for i in where]
    n = len(values)
    # prefix sums by position parity, plain and doubled: a window's Luhn sum in O(1)
    plain = [[0] * (n + 1), [0] * (n + 1)]
    doubled = [[0] * (n + 1), [0] * (n + 1)]
    for k, value in enumerate(values):
        for parity in (0, 1):
            plain[parity][k + 1] = plain[parity][k] + (value if k % 2 == parity else 0)
            doubled[parity][k + 1] = doubled[parity][k] + (
                _DOUBLED[value] if k % 2 == parity else 0
            )
    hide = bytearray(n)
    found = False
    for end in range(_MIN - 1, n):  # the rightmost digit of the window is not doubled
        same, other = end % 2, 1 - end % 2
        for start in range(max(0, end - _MAX + 1), end - _MIN + 2):
            total = (
                plain[same][end + 1]
                - plain[same][start]
                + doubled[other][end + 1]
                - doubled[other][start]
            )
            if total % 10 == 0:
                found = True
                hide[start + _KEEP_FIRST : end + 1 - _KEEP_LAST] = b"\x01" * (
                    end + 1 - _KEEP_LAST - start - _KEEP_FIRST
                )
    if not found:
        return None
    chars = list(run)
    for k, index in enumerate(where):
        if hide[k]:
            chars[index] = "*"
    return "".join(chars)


def mask_pans(text: str) -> tuple[str, int]:
    """``text`` with every PAN masked, and how many digit runs held one."""
    if len(text) < _MIN or _CANDIDATE.search(text) is None:
        return text, 0
    count = 0

    def replace(match: re.Match[str]) -> str:
        nonlocal count
        masked = _masked_run(match.group())
        if masked is None:
            return match.group()
        count += 1
        return masked

    return _CANDIDATE.sub(replace, text), count
