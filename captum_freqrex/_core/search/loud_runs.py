"""Small removals that change the decision, built from runs of the loudest features.

A model can shrug off the removal of every contiguous band and still change its decision when a
few dozen of its loudest bins go, scattered over a region: removing the band that holds them all
takes their context too. On held-out percussion clips whose decision no band's removal changes,
a union of 4 to 16 runs of loud bins does, and not all 32 together; on held-out speech a
gradient optimiser finds such removals of a median 0.2% of the bins
(``benchmarks/white_box_sets.py``). The band screening starts from contiguous bands and so never
sees such a set; :func:`loud_run_flip` looks for one with the model's answers only:

1. The loudest :data:`LOUD_SHARE` of the features, in id order (frequency order for rfft bins),
   are cut into :data:`RUNS` runs of neighbours; each run is removed from the input alone, in
   one model call.
2. Where no run's removal changes the decision, the runs are ordered by how close their removal
   came to changing it (the lowest target margin first: :func:`probe_verdicts`), and the unions
   of the first ``k`` runs, on a geometric grid of ``k``, are removed the smallest first, a few
   per model call, until one changes the decision.

The smallest run or union whose removal changed the decision (a tie never counts) is the
answer. The joint search checks it kept alone, with the sufficient set
(:mod:`~captum_freqrex._core.certify.joint`); band screening shrinks it while it still flips the
decision (:mod:`~captum_freqrex._core.search.band_screening`). Queries: at most :data:`QUERIES`.
"""

from __future__ import annotations

import math
from typing import Callable, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from captum_freqrex._core.records import ProbeResult
from captum_freqrex._utils.ordered import ask_until_one_holds

#: Share of the features (the loudest) that the runs are cut from.
LOUD_SHARE = 0.1

#: Runs of neighbouring loud features, each removed alone.
RUNS = 32

#: Counts of runs whose union is removed where no single run's removal changed the decision.
UNION_SIZES = (2, 3, 4, 6, 8, 12, 16, 24, 32)

#: Unions removed per model call, the smallest first.
UNION_BATCH = 3

#: Most queries of :func:`loud_run_flip`.
QUERIES = RUNS + len(UNION_SIZES)

#: What a removal tells the search: whether it changed the decision (a tie never does), and how
#: close it came to changing it (higher: closer; any scale, only the order counts).
Verdicts = Tuple[List[bool], List[float]]


def probe_verdicts(results: Sequence[ProbeResult]) -> Verdicts:
    r"""The :data:`Verdicts` of removals from their :class:`ProbeResult`: closeness is the
    target's margin, negated (its confidence for a decision without margins)."""
    closeness = [-(r.margin if not math.isnan(r.margin) else r.confidence) for r in results]
    return [bool(r.changed) for r in results], closeness


def loud_pool(loudest: Tensor, share: float = LOUD_SHARE) -> Tensor:
    r"""The loudest ``share`` of the features (at least one), in ascending id order.

    Args:
        loudest (Tensor): ``(n_features,)`` feature ids, loudest first.
        share (float, optional): Share of the features. Default: 0.1

    Returns:
        Tensor: The ids, ascending.
    """
    return loudest[: max(1, round(share * loudest.numel()))].sort().values


def loud_run_flip(removed: Callable[[Sequence[Tensor]], Verdicts], pool: Tensor, n_runs: int = RUNS) -> Optional[Tensor]:
    r"""The smallest run of ``pool``, or union of runs, whose removal changes the decision.

    Args:
        removed (Callable): ``removed(sets) -> (changed, closeness)``: the model on each set of
                    feature ids removed from the input (one model call, or answers read back), as
                    :data:`Verdicts`.
        pool (Tensor): The loud feature ids, ascending (:func:`loud_pool`).
        n_runs (int, optional): Most runs the pool is cut into. Default: 32

    Returns:
        Tensor: The ids of the smallest flipping set found (None: none).
    """
    runs = list(torch.tensor_split(pool, min(n_runs, pool.numel())))
    changed, closeness = removed(runs)
    flipping = [run for run, flips in zip(runs, changed) if flips]
    if flipping:
        return min(flipping, key=lambda run: run.numel())
    order = sorted(range(len(runs)), key=lambda i: -closeness[i])  # stable: ties by frequency
    sizes = [k for k in UNION_SIZES if k <= len(runs)]
    unions = [torch.cat([runs[i] for i in order[:k]]) for k in sizes]
    answers = ask_until_one_holds(unions, lambda chunk: removed(chunk)[0], bool, UNION_BATCH)
    return next((ids for ids, flips in zip(unions, answers) if flips), None)
