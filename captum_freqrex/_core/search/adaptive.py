"""Adaptive refinement: probe several feature orders at the root, refine along the best one.

The partition refinement cuts pieces that are contiguous along a feature order (see
:mod:`captum_freqrex._core.search.partition`). Which order separates the causes depends on the model
and the clip: bands for a model that reads a few tones (the default), interleaved sets for one that
needs energy across the whole spectrum, loudness tiers for a few loud causes scattered among
quiet bins. :class:`AdaptiveRefinement` asks the model: for every candidate order it cuts the
feature axis, in that order, into ``n_pieces`` equal pieces and queries every non-empty proper
union of them (``2**n_pieces - 2`` sets per order, all in one batch). The order whose smallest
passing union holds the fewest features made the most progress; the refinement then runs along it
(the same permutation for ``"interleaved"``) with the rest of the budget. Ties go to the first order
listed, so a model that any order resolves alike is refined in frequency order.

Cost: ``len(orders) * (2**n_pieces - 2)`` queries (42 with the defaults) out of ``max_queries``,
once per example. The probe looks one cut deep: it tells "a quarter of the spectrum in some order
suffices, in frequency order three quarters are needed" apart from "any order needs it all", which
is what separates band-like from scattered causes; it cannot foresee deeper structure.
"""

from __future__ import annotations

import itertools
from typing import Dict, Optional, Sequence

import torch
from torch import Tensor

from captum_freqrex._core.search.partition import (
    OrderLike,
    PartitionRefinement,
    check_order,
    feature_order,
)
from captum_freqrex._core.search.base import SearchContext, SearchResult

#: Probe sizes within this relative distance of the smallest tie (equal pieces differ by rounding).
TIE_RTOL = 0.01


def _probe_sets(n_features: int, n_pieces: int, perm: Optional[Tensor]) -> Tensor:
    """Masks ``(2**n_pieces - 2, n_features)`` of the non-empty proper unions of equal pieces along ``perm``."""
    bounds = torch.linspace(0, n_features, n_pieces + 1).round().long().tolist()
    piece_of = torch.zeros(n_features, dtype=torch.long)
    for i in range(n_pieces):
        piece_of[bounds[i] : bounds[i + 1]] = i
    if perm is not None:  # position p holds feature perm[p]
        by_feature = torch.empty_like(piece_of)
        by_feature[perm] = piece_of
        piece_of = by_feature
    subsets = [c for r in range(1, n_pieces) for c in itertools.combinations(range(n_pieces), r)]
    member = torch.zeros(len(subsets), n_pieces, dtype=torch.bool)
    for row, subset in enumerate(subsets):
        member[row, list(subset)] = True
    return member[:, piece_of].float()


class AdaptiveRefinement:
    r"""Partition refinement along the feature order that a one-cut probe finds most progressive.

    Args:
        orders (sequence, optional): Candidate orders (names of
                    :data:`~captum_freqrex._core.search.partition.ORDERS` or permutation tensors), the
                    preferred first: it wins ties (sizes within :data:`TIE_RTOL` of the smallest).
                    Default: ``("frequency", "energy", "interleaved")``
        prefer (str, optional): How the refinement along the chosen order picks the next passing
                    set (see :class:`PartitionRefinement`). Default: ``"energy"``

    The chosen order and each order's probe result (the fewest features of a passing union, the
    number of features when none passed) are in the result's ``details``.
    """

    def __init__(
        self, orders: Sequence[OrderLike] = ("frequency", "energy", "interleaved"), prefer: str = "energy"
    ) -> None:
        PartitionRefinement(prefer=prefer)  # validates prefer
        orders = list(orders)
        if not orders:
            raise ValueError("orders must name at least one order")
        for order in orders:
            check_order(order)
        self.orders = orders
        self.prefer = prefer

    def __repr__(self) -> str:
        names = [o if isinstance(o, str) else "<permutation>" for o in self.orders]
        return f"AdaptiveRefinement(orders={names!r}, prefer={self.prefer!r})"

    @staticmethod
    def _name(order: OrderLike, index: int) -> str:
        return order if isinstance(order, str) else f"custom{index}"

    def run(self, context: SearchContext) -> SearchResult:
        r"""Probe every order at the root, then refine along the winner with the remaining budget."""
        opts = context.options
        n, pieces = context.n_features, opts.n_pieces
        per_order = 2**pieces - 2
        step = 2**pieces - 1
        budget = opts.max_queries
        affordable = budget is None or budget - context.queries >= len(self.orders) * per_order + step
        perms = [feature_order(order, context) for order in self.orders]
        sizes: Dict[str, int] = {}
        chosen = 0
        if len(self.orders) > 1 and n >= 2 * pieces and affordable:
            sets = torch.cat([_probe_sets(n, pieces, perm) for perm in perms])
            verdicts = context.evaluate_sets(sets.to(context.device))
            counts = sets.sum(dim=1).long()
            for i, order in enumerate(self.orders):
                rows = slice(i * per_order, (i + 1) * per_order)
                passing = counts[rows][verdicts.passes[rows]]
                sizes[self._name(order, i)] = int(passing.min()) if passing.numel() else n
            best = min(sizes.values())
            chosen = next(i for i, name in enumerate(sizes) if sizes[name] <= best * (1 + TIE_RTOL))
        probe_queries = context.queries
        perm = perms[chosen]
        result = context.run_within_budget(
            PartitionRefinement(order=perm if perm is not None else "frequency", prefer=self.prefer)
        )
        name = self._name(self.orders[chosen], chosen)
        details = {"order": name, "probe": sizes, "probe_queries": probe_queries}
        return SearchResult(result.responsibility, context.queries, result.stopped_by, details, result.sets)
