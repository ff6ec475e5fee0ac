"""Result tables as pandas DataFrames, for the tables that offer ``to_pandas()``."""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence


def rows_to_pandas(rows: Sequence[Mapping[str, Any]], columns: Optional[Sequence[str]] = None) -> Any:
    r"""One DataFrame row per dict, in the given column order.

    Args:
        rows (sequence of dict): The rows; a missing key is a missing value.
        columns (sequence of str, optional): The columns, in order. Default: the keys of the rows,
                    in order of first appearance.

    Returns:
        pandas.DataFrame: The table.

    Raises:
        ImportError: Without pandas, naming how to install it.
    """
    try:
        import pandas
    except ImportError as error:
        raise ImportError("to_pandas() needs pandas: pip install pandas") from error
    if columns is None:
        columns = list(dict.fromkeys(key for row in rows for key in row))
    return pandas.DataFrame([{c: row.get(c) for c in columns} for row in rows], columns=list(columns))
