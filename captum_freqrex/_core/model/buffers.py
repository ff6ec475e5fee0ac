"""A model in training mode runs without keeping the explanation's mark on its buffers.

A module in training mode updates some of its buffers as it runs: batch normalisation's running
mean and variance, and its count of batches. An explanation runs hundreds of mutants (spectra
with bands removed) through the model, so without care it would leave those statistics changed,
and the model's eval-mode outputs with them, long after the explanation (on the zoo's percussion
CNN, the shipped clip's class probability fell from 0.84 to 0.54). :func:`buffers_kept` puts every
buffer back after each call. In training mode batch normalisation normalises with the batch's own
statistics, not the running ones, so no output the explanation reads changes; the explanation's
warning that the model's output changed between calls (``model.eval()``) stays the user's cue.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, List, Tuple

import torch
from torch import Tensor, nn

__all__ = ["buffers_kept", "in_training"]


def in_training(model: Any) -> bool:
    r"""Whether ``model`` is a module any part of which is in training mode."""
    return isinstance(model, nn.Module) and any(module.training for module in model.modules())


@contextmanager
def buffers_kept(model: Any) -> Iterator[None]:
    r"""Run the ``with`` block, then put back every buffer of ``model`` as it was before it, where
    ``model`` is a module in training mode (nothing is copied otherwise: None, a function, a
    module in eval mode).

    Args:
        model (Any): The model about to be called, or None.
    """
    if not in_training(model):
        yield
        return
    saved: List[Tuple[Tensor, Tensor]] = [(buffer, buffer.detach().clone()) for buffer in model.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for buffer, value in saved:
                buffer.copy_(value)
