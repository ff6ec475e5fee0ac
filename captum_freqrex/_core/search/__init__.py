"""Verdicts -> responsibility: the search protocol (:mod:`.base`), the built-in searches and their names.

This package's namespace is the registry: :func:`resolve_search` turns ``FreqReX(search=...)`` into
a search object. The strategies import only :mod:`.base`, never this registry, so no import circle.
"""

from __future__ import annotations

from typing import Callable, Dict, Union

from captum_freqrex._core.search.adaptive import AdaptiveRefinement
from captum_freqrex._core.search.auto import AutoSearch
from captum_freqrex._core.search.band_screening import BandScreening
from captum_freqrex._core.search.base import ResponsibilitySearch
from captum_freqrex._core.search.partition import PartitionRefinement

SearchLike = Union[None, str, ResponsibilitySearch]

#: The built-in searches by name (``FreqReX(search="adaptive")``).
NAMED_SEARCHES: Dict[str, Callable[[], ResponsibilitySearch]] = {
    "auto": AutoSearch,
    "refinement": PartitionRefinement,
    "interleaved": lambda: PartitionRefinement(order="interleaved"),
    "energy": lambda: PartitionRefinement(order="energy"),
    "adaptive": AdaptiveRefinement,
    "band_screening": BandScreening,
}

#: Searches whose responsibility is above 0 only where a removal (or keep) they queried passed.
BUILT_IN_SEARCHES = (AutoSearch, PartitionRefinement, AdaptiveRefinement, BandScreening)


def resolve_search(search: SearchLike) -> ResponsibilitySearch:
    r"""A search object from ``search``: None is the default :class:`AutoSearch` (the strategy chosen per
    example); a string names a built-in (``"auto"``, ``"refinement"``, ``"interleaved"``,
    ``"energy"``, ``"adaptive"``, ``"band_screening"``).

    Args:
        search (None, str or search object): What ``FreqReX(search=...)`` was given.

    Returns:
        ResponsibilitySearch: An object with a ``run(context) -> SearchResult`` method.

    Raises:
        ValueError: For an unknown name. TypeError: For an object without a ``run`` method.
    """
    if search is None:
        return AutoSearch()
    if isinstance(search, str):
        if search not in NAMED_SEARCHES:
            raise ValueError(f"search must be a search object or one of {sorted(NAMED_SEARCHES)}, got {search!r}")
        return NAMED_SEARCHES[search]()
    if not callable(getattr(search, "run", None)):
        raise TypeError(
            f"search must have a run(context) -> SearchResult method (see captum_freqrex._core.search.base), "
            f"got {type(search).__name__}"
        )
    return search
