"""CSV cells that a spreadsheet reads as data, never as a formula (CWE-1236, CSV injection).

A spreadsheet that opens a CSV runs a cell starting with ``=``, ``+``, ``-`` or ``@`` as a formula
(and some strip a leading tab or carriage return first): a class folder named
``=cmd|' /C calc'!A0`` would become a command in the user's spreadsheet. As OWASP advises, such a
text cell gets a leading single quote, which spreadsheets show as text and do not display.
Numbers stay numbers: ``-3.5``, ``-1e-05``, ``-inf`` (as floats or as the text of a number) are
written unchanged. Every CSV writer of the package goes through :func:`write_rows` (or
:func:`safe_cell` per cell).
"""

from __future__ import annotations

import csv
import numbers
import re
from typing import IO, Any, Iterable, Mapping, Optional, Sequence

__all__ = ["FORMULA_STARTS", "safe_cell", "write_rows"]

#: First characters that make a spreadsheet read a cell as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

#: Text that is a plain number (decimal, exponent, infinity, NaN), signed or not.
_NUMBER = re.compile(r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf(?:inity)?|nan)", re.IGNORECASE)


def safe_cell(value: Any) -> Any:
    r"""The value to write in a CSV cell: a text that a spreadsheet would run as a formula gets a leading ``'``.

    Args:
        value (Any): A cell: a number, None (an empty cell) or anything written as its ``str``.

    Returns:
        Any: ``value`` itself when it is a number, None, or text that does not start with one of
        :data:`FORMULA_STARTS` or is the text of a number (``"-3.5"``); otherwise ``"'" + str(value)``.
    """
    if value is None or isinstance(value, numbers.Number):
        return value
    text = str(value)
    if text.startswith(FORMULA_STARTS) and _NUMBER.fullmatch(text) is None:
        return "'" + text
    return value


def write_rows(
    handle: IO[str],
    rows: Iterable[Mapping[str, Any]],
    fieldnames: Optional[Sequence[str]] = None,
    **fmtparams: Any,
) -> None:
    r"""Write a header and dict rows as CSV (like :class:`csv.DictWriter`), every cell through :func:`safe_cell`.

    Args:
        handle (file): A text file opened with ``newline=""``.
        rows (iterable of dict): The rows; a key that is not a column raises ``ValueError``, a
                    missing one is an empty cell (None is an empty cell too).
        fieldnames (sequence of str, optional): The columns. Default: the keys of the first row
        **fmtparams: Passed on to :class:`csv.DictWriter` (``lineterminator``, ``delimiter``, ...).
    """
    rows = list(rows)
    if fieldnames is None:
        if not rows:
            raise ValueError("write_rows needs fieldnames when there are no rows")
        fieldnames = list(rows[0])
    writer = csv.DictWriter(handle, fieldnames=list(fieldnames), **fmtparams)
    writer.writerow({name: safe_cell(name) for name in fieldnames})
    writer.writerows({key: safe_cell(value) for key, value in row.items()} for row in rows)
