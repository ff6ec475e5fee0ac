"""Model-input rows reused by every query of a call, into which mutants are synthesised."""

from __future__ import annotations

from typing import List, Sequence

from torch import Tensor


class RowBuffer:
    r"""Reusable model-input rows: one buffer per input, grown when a call needs more rows.

    Allocating every batch of mutants afresh costs page faults comparable to synthesising them on
    long clips (allocations of 32 MiB and more come straight from the operating system). Outputs
    of a model called on these rows must be copied before the rows are written again: a model
    may return a view of its input.

    Args:
        examples (sequence of Tensor): Per input, one example ``(*example_shape)``: the shape,
                    dtype and device of a row.
    """

    def __init__(self, examples: Sequence[Tensor]) -> None:
        self.examples = tuple(examples)
        self._buffers: List[Tensor] = []

    @property
    def capacity(self) -> int:
        """Rows allocated so far (the most any call has taken)."""
        return self._buffers[0].shape[0] if self._buffers else 0

    def take(self, n_rows: int) -> List[Tensor]:
        """Per input, ``(n_rows, *example_shape)`` uninitialised rows (views of the buffers)."""
        if not self._buffers or self._buffers[0].shape[0] < n_rows:
            self._buffers = [e.new_empty((n_rows,) + tuple(e.shape)) for e in self.examples]
        return [b[:n_rows] for b in self._buffers]
