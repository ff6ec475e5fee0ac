"""CSV cells that a spreadsheet reads as data, never as a formula (CWE-1236): the one helper every
CSV writer of the package goes through."""

from __future__ import annotations

import csv
import io

import pytest

from captum_freqrex._utils.csv_cells import safe_cell, write_rows

#: OWASP's examples of formula injection, one per dangerous first character.
PAYLOADS = ["=cmd|' /C calc'!A0", "+1+cmd|' /C calc'!A0", "-2+3+cmd|' /C calc'!A0", "@SUM(1+1)*cmd|' /C calc'!A0",
            "\t=1+1", "\r=1+1", "=HYPERLINK(\"http://example.invalid\",\"x\")", "-", "+", "-inf+1", "-1e5x"]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_formula_text_gets_a_leading_quote(payload):
    assert safe_cell(payload) == "'" + payload


@pytest.mark.parametrize("value", [-3.5, -1, 0, float("-inf"), float("nan"), True, None, "-3.5", "+2", "-1e-05",
                                   "-.5", "-inf", "-Infinity", "NaN", "a440", "(all)", "'=already quoted", " =x"])
def test_numbers_and_plain_text_stay_as_they_are(value):
    out = safe_cell(value)
    assert out is value or (out != out and value != value)  # the very object (NaN is not equal to itself)


def test_write_rows_neutralises_header_and_cells_and_keeps_numbers():
    buffer = io.StringIO()
    write_rows(buffer, [{"class": "=1+1", "@model": -3.5, "snr": None}, {"class": "a440", "@model": float("-inf")}],
               lineterminator="\n")
    assert list(csv.reader(io.StringIO(buffer.getvalue()))) == [
        ["class", "'@model", "snr"], ["'=1+1", "-3.5", ""], ["a440", "-inf", ""],
    ]
    with pytest.raises(ValueError, match="not in fieldnames"):
        write_rows(io.StringIO(), [{"class": "a"}, {"other": 1}])
    with pytest.raises(ValueError, match="needs fieldnames"):
        write_rows(io.StringIO(), [])
