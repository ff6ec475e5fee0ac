"""A search context over a subset of the features: any search, run on the features left over.

:func:`restrict_context` turns the :class:`~captum_freqrex._core.search.base.SearchContext` of one
example into the context of the same example over the ``m`` *allowed* features only: a search sees
``m`` features (ids ``0 .. m-1``, in the order of their full ids) and never the others, which stay
at the baseline in every mutant. It is how :mod:`captum_freqrex._core.certify.multiple` searches
for a sufficient set disjoint from earlier ones, with whichever search the explainer uses and
without any change to it.

Refinement steps keep the fast path (sums of part waveforms): a contiguous range of allowed ids
is a few contiguous ranges of full ids, split where an excluded feature sits between them.
"""

from __future__ import annotations

import bisect
from typing import List, Sequence

import torch
from torch import Tensor

from captum_freqrex._core.search.base import RefinementOptions, SearchContext, SetVerdicts
from captum_freqrex._core.spectral.space import Range
from captum_freqrex._core.spectral.synthesis import StepQuery


def _full_ranges(ids: List[int], breaks: List[int], ranges: Sequence[Range]) -> List[Range]:
    # Allowed positions [a, b) -> full-id ranges; breaks[j] is a position p with ids[p + 1] > ids[p] + 1.
    out: List[Range] = []
    for a, b in ranges:
        start = a
        for p in breaks[bisect.bisect_left(breaks, a): bisect.bisect_left(breaks, b - 1)]:
            out.append((ids[start], ids[p] + 1))
            start = p + 1
        if b > start:
            out.append((ids[start], ids[b - 1] + 1))
    return out


def restrict_context(context: SearchContext, allowed: Tensor, options: RefinementOptions) -> SearchContext:
    r"""The context of the same example over the ``allowed`` features only.

    Args:
        context (SearchContext): The example's context over all ``n`` features (``"sufficient"``
                    mode: sets are kept alone, everything else at the baseline).
        allowed (Tensor): ``(n,)`` bool, the features the search may use; at least one.
        options (RefinementOptions): The restricted search's knobs (its own ``max_queries``).

    Returns:
        SearchContext: Over ``m = allowed.sum()`` features; set ``j`` of it is the ``j``-th allowed
        feature in id order. Its queries are counted on it (not on ``context``); its
        ``root_passes`` is True (the caller checked that keeping every allowed feature passes).
    """
    ids_tensor = allowed.detach().cpu().bool().nonzero().squeeze(1)
    if ids_tensor.numel() == 0:
        raise ValueError("a restricted search needs at least one allowed feature")
    ids = ids_tensor.tolist()
    breaks = (ids_tensor[1:] != ids_tensor[:-1] + 1).nonzero().squeeze(1).tolist()
    n, m = context.n_features, len(ids)
    columns = ids_tensor.to(context.device)

    def evaluate_steps(steps: Sequence[StepQuery]) -> Tensor:
        wide = [StepQuery([_full_ranges(ids, breaks, part) for part in step.parts], step.combinations) for step in steps]
        return context.evaluate_steps(wide)

    def evaluate_masks(sets: Tensor) -> SetVerdicts:
        full = torch.zeros(sets.shape[0], n, dtype=sets.dtype, device=context.device)
        full[:, columns] = sets.to(context.device)
        return context.evaluate_masks(full)

    return SearchContext(
        evaluate_steps, evaluate_masks, m, True, options, context.generator, context.device,
        context.energy[columns.to(context.energy.device)], context.mode, context.batch_size,
    )
