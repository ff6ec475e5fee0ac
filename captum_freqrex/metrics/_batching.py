"""The one batching helper every metric shares (as :mod:`captum.metrics` does).

A metric describes its work as ``n_rows`` rows (one mutant each); the helper hands the rows to the
metric in slices of at most ``max_rows`` (cut as the oracle cuts FreqReX's queries:
:func:`~captum_freqrex._core.model.oracle.row_slices`) and folds the partial results with the metric's own
aggregation (concatenation of per-row verdicts, a running sum, ...).
"""

from __future__ import annotations

from typing import Callable, Optional, TypeVar

from captum_freqrex._core.model.oracle import row_slices

R = TypeVar("R")


def check_max_examples_per_batch(max_examples_per_batch: Optional[int]) -> None:
    """Raise if ``max_examples_per_batch`` is not None or a positive int."""
    if max_examples_per_batch is not None and (
        not isinstance(max_examples_per_batch, int) or max_examples_per_batch < 1
    ):
        raise ValueError(
            f"max_examples_per_batch must be None or a positive int, got {max_examples_per_batch!r}"
        )


def divide_and_aggregate(
    n_rows: int,
    metric_func: Callable[[int, int], R],
    agg_func: Callable[[R, R], R],
    max_rows: int,
) -> R:
    r"""Evaluate ``metric_func`` on slices of ``n_rows`` rows and fold the results.

    Args:
        n_rows (int): Number of rows (mutants) to evaluate; at least 1.
        metric_func (Callable): ``metric_func(start, stop)`` evaluates rows ``[start, stop)`` (one
                    model call) and returns a partial result.
        agg_func (Callable): ``agg_func(so_far, partial)`` folds a partial result into the running
                    one, in row order (e.g. concatenation, or ``torch.add`` for a sum).
        max_rows (int): Most rows per slice, i.e. per model call.

    Returns:
        The aggregated result over all rows.
    """
    if n_rows < 1:
        raise ValueError(f"nothing to evaluate: n_rows must be >= 1, got {n_rows}")
    if max_rows < 1:
        raise ValueError(f"max_rows must be >= 1, got {max_rows}")
    slices = row_slices(n_rows, max_rows)
    result = metric_func(*next(slices))
    for start, stop in slices:
        result = agg_func(result, metric_func(start, stop))
    return result
