"""The default search: chooses per example, by what the model answers, how responsibility is searched.

One call of :class:`FreqReX` with no ``search=`` meets very different cases: a tone detector (one
bin decides), a model that needs energy spread across the spectrum (no band separates its causes),
a pitch model that normalises its input (any near-empty bin at the pitch would do, but a listener
wants the harmonics), and removals in ``mode="necessary"``. :class:`AutoSearch` picks per example:

* ``mode="necessary"``: :class:`~captum_freqrex._core.search.band_screening.BandScreening`, the
  hierarchical screening of removals (it finds the fewest frequencies that flip the decision on far
  more clips than the refinement, ``benchmarks/single_bin_limit.py``);
* ``mode="sufficient"``: the partition refinement in frequency order, preferring the loudest of
  equally small passing sets (:class:`~captum_freqrex._core.search.partition.PartitionRefinement`,
  ``prefer="energy"``), which stops once its answer is settled. When its smallest passing set still
  holds more than :data:`SCATTERED_SHARE` of the features, bands could not separate the causes: the
  rest of the budget goes to :class:`~captum_freqrex._core.search.adaptive.AdaptiveRefinement` over
  the other orders (loudness tiers, interleaved), and the result with the smaller passing set is
  returned.

The result's ``details`` say which way was taken (``"strategy"``) and, after an escalation, both
results' smallest passing sets.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

from captum_freqrex._core.search.adaptive import AdaptiveRefinement
from captum_freqrex._core.search.band_screening import BandScreening
from captum_freqrex._core.search.base import SearchContext, SearchResult
from captum_freqrex._core.search.partition import PartitionRefinement

#: A smallest passing set above this share of the features (and :data:`SCATTERED_MIN` features)
#: means the bands did not separate the causes: other feature orders are tried.
SCATTERED_SHARE = 0.01

#: Sets of at most this many features never count as scattered (1% of a short clip is a few bins).
SCATTERED_MIN = 16


def _smallest(result: SearchResult) -> Optional[int]:
    """Features in the smallest passing set a search returned (None: it kept none)."""
    return None if result.sets is None or not result.sets.shape[0] else int(result.sets[0].sum())


class AutoSearch:
    r"""The default search of :class:`FreqReX`: the strategy is chosen per example (module docstring).

    Uses ``context.options`` as the strategies it runs do; ``max_queries`` caps all of them together.
    """

    def __repr__(self) -> str:
        return "AutoSearch()"

    def run(self, context: SearchContext) -> SearchResult:
        r"""Band screening for removals; the refinement, then other orders if it stays scattered."""
        if context.mode == "necessary":
            result = BandScreening().run(context)
            return dataclasses.replace(result, details={**result.details, "strategy": "band_screening"})
        first = PartitionRefinement(prefer="energy").run(context)
        size = _smallest(first)
        limit = max(SCATTERED_MIN, SCATTERED_SHARE * context.n_features)
        remaining = context.remaining
        step = 2**context.options.n_pieces - 1
        if (size is not None and size <= limit) or (remaining is not None and remaining < 3 * step):
            return dataclasses.replace(first, details={**first.details, "strategy": "frequency"})
        options = dataclasses.replace(context.options, max_queries=remaining)
        rest = dataclasses.replace(context, options=options, queries=0)
        second = AdaptiveRefinement(orders=("energy", "interleaved"), prefer="energy").run(rest)
        context.queries += rest.queries
        other = _smallest(second)
        better = second if other is not None and (size is None or other < size) else first
        details = {
            **better.details, "strategy": f"escalated to {second.details['order']}",
            "frequency_set": size, "escalated_set": other,
        }
        if better is first:
            details["strategy"] = "frequency (escalation found no smaller set)"
        return SearchResult(
            better.responsibility, first.queries + second.queries, better.stopped_by, details, better.sets,
        )
