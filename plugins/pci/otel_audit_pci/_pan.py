"""Primary account numbers: find them (Luhn, ISO/IEC 7812-1 Annex B) and mask them.

A candidate is a run of digits in which single spaces or dashes may separate groups
(``4111 1111 1111 1111``, ``4111-1111-1111-1111``, ``4111111111111111``). A PAN is a
Luhn-valid stretch of 13–19 digits of that run that starts at the beginning of a group
and ends at the end of a group, so a number written next to another one
(``qty 2 4111 1111 1111 1111``, two card numbers back to back) is still found, while a
PAN must not start or end in the middle of a longer number (``12`` + a PAN, with no
separator, is an 18-digit number, not a card). Inside a group of more than 19 digits,
which is no card number by itself, every 13–19 digit window is checked. Each PAN keeps
its first 6 and last 4 digits and has the digits in between replaced by ``*`` (PCI DSS
v4.0 req. 3.4.1: at most BIN and last four displayed); separators are kept.
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


def _windows(groups: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Candidate ``(first, last)`` digit indexes: group-aligned stretches of 13–19 digits,
    and every window inside a group longer than 19 digits."""
    out = []
    for i, (first, _) in enumerate(groups):
        for _, last in groups[i:]:
            size = last - first + 1
            if size > _MAX:
                break
            if size >= _MIN:
                out.append((first, last))
    for first, last in groups:
        if last - first + 1 > _MAX:
            for end in range(first + _MIN - 1, last + 1):
                for start in range(max(first, end - _MAX + 1), end - _MIN + 2):
                    out.append((start, end))
    return out


def _masked_run(run: str) -> str | None:
    """``run`` with every PAN in it masked, or None when it holds none."""
    where = [i for i, char in enumerate(run) if "0" <= char <= "9"]
    values = [ord(run[i]) - 48 for i in where]
    n = len(values)
    groups: list[tuple[int, int]] = []  # digit indexes of maximal unseparated groups
    for k in range(n):
        if k and where[k] == where[k - 1] + 1:
            groups[-1] = (groups[-1][0], k)
        else:
            groups.append((k, k))
    # prefix sums by position parity, plain and doubled: a window's Luhn sum in O(1)
    plain = [[0] * (n + 1), [0] * (n + 1)]
    doubled = [[0] * (n + 1), [0] * (n + 1)]
    for k, value in enumerate(values):
        for parity in (0, 1):
            own = k % 2 == parity
            plain[parity][k + 1] = plain[parity][k] + (value if own else 0)
            doubled[parity][k + 1] = doubled[parity][k] + (_DOUBLED[value] if own else 0)
    hide = bytearray(n)
    found = False
    for start, end in _windows(groups):
        same, other = end % 2, 1 - end % 2  # the rightmost digit is not doubled
        total = (
            plain[same][end + 1]
            - plain[same][start]
            + doubled[other][end + 1]
            - doubled[other][start]
        )
        if total % 10 == 0:
            found = True
            for k in range(start + _KEEP_FIRST, end + 1 - _KEEP_LAST):
                hide[k] = 1
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
