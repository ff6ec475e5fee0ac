"""Extraction of the certified sets from a ranking: batched exponential + bisection search.

Every set is a prefix ``top-k`` of the ranking. Three monotone-in-practice predicates over ``k`` are
searched at once, each with a bracket ``(lo, hi]`` (``lo`` known false, ``hi`` known true):

* sufficient: keeping only the top-``k`` features keeps the decision;
* sufficient-and-necessary: that, and removing them from the original changes the decision;
* complete: at least the sufficient-and-necessary size, keeps the decision, and reaches the original
  confidence within a tolerance.

The first round probes a geometric grid of ``k`` (exponential search); later rounds probe evenly
inside each open bracket (a many-way bisection), all probes of a round in one batch; where the
sufficient size is searched alone (``sufficient_only``, the default explanation's), a round's
sizes are asked smallest first, :data:`LAZY_BATCH` per batch, until one passes, since the bracket
needs no larger one. The returned sizes are the smallest probed sizes that satisfy each
predicate; every set is then certified by querying the model on it once more.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import torch
from torch import Tensor

from captum_freqrex._core.records import ProbeResult
from captum_freqrex._utils.ordered import ask_until_one_holds

#: Queries kept back from the extraction budget for the final certification batch: the three
#: sets kept alone, the sufficient-and-necessary set removed, and the unmasked input again.
CERTIFICATION_QUERIES = 5

#: Sizes asked per model call when one bracket is searched alone (smallest first, until one passes).
LAZY_BATCH = 4


@dataclass
class _Bracket:
    lo: int
    hi: Optional[int]
    needs_removal: bool
    floor: Callable[[], int] = lambda: 0

    def open(self) -> bool:
        return self.hi is None or self.hi - max(self.lo, self.floor() - 1) > 1


@dataclass
class PrefixSearch:
    r"""Batched search for the smallest prefixes satisfying the three set predicates.

    Args:
        query (Callable): ``query(keep_sizes, remove_sizes) -> (keep_results, remove_results)``;
                    evaluates prefix mutants in one batch and returns :class:`ProbeResult` lists.
        n_features (int): Number of ranked features.
        original (ProbeResult): The model on the unmasked input.
        target_confidence (float): Confidence a complete set must reach.
        budget (int): Most queries to spend, certification included.
        baseline (ProbeResult, optional): The model on the baseline alone (keeping nothing), when
                    already known; queried otherwise.
        grid_size (int, optional): Sizes probed per round per open bracket. Default: 8
        sufficient_only (bool, optional): Search the sufficient size only (the others are then
                    searched by :mod:`~captum_freqrex._core.certify.joint`). Default: False
        known_sufficient (int, optional): A prefix size already seen to keep the decision (the
                    responsibility search's passing set, where it is the ranking's top): the
                    sufficient bracket starts with it as its known passing end, so the smallest
                    sizes below it are probed even where the ranking is not monotone (a loud
                    peak that passes alone, then loud bins that undo it). Default: None

    When the unmasked input does not pass (a target the model does not decide, or a confidence
    below the filter), keeping everything fails, which says nothing about smaller prefixes: only
    the sufficient size is searched, over a geometric grid that grows denser each round, and no
    failed size is taken to rule out the sizes below it until a passing size is found.
    """

    query: Callable[[List[int], List[int]], Tuple[List[ProbeResult], List[ProbeResult]]]
    n_features: int
    original: ProbeResult
    target_confidence: float
    budget: int
    baseline: Optional[ProbeResult] = None
    grid_size: int = 8
    sufficient_only: bool = False
    known_sufficient: Optional[int] = None
    keep_cache: Dict[int, ProbeResult] = field(default_factory=dict)
    remove_cache: Dict[int, ProbeResult] = field(default_factory=dict)
    queries: int = 0
    charged: int = 0  # what the rounds would cost with every size asked: the budget's measure

    def _sufficient(self, k: int) -> Optional[bool]:
        kept = self.keep_cache.get(k)
        return None if kept is None else kept.passes

    def _necessary(self, k: int) -> Optional[bool]:
        kept, removed = self.keep_cache.get(k), self.remove_cache.get(k)
        if kept is None or removed is None:
            return None
        return kept.passes and bool(removed.changed)

    def _complete(self, k: int) -> Optional[bool]:
        kept = self.keep_cache.get(k)
        return None if kept is None else kept.passes and kept.confidence >= self.target_confidence

    def _run_probes(self, keep: List[int], remove: List[int], until_one_passes: bool = False) -> None:
        keep = sorted({k for k in keep if k not in self.keep_cache})
        remove = sorted({k for k in remove if k not in self.remove_cache})
        if not keep and not remove:
            return
        self.charged += len(keep) + len(remove)
        if until_one_passes and not remove:
            # One bracket's sizes, ascending: the bracket needs the smallest that passes and those
            # below it, so the sizes above it are not asked (charged all the same: the rounds, and
            # so the sizes returned, are what asking every size gives).
            kept = ask_until_one_holds(keep, lambda chunk: self.query(list(chunk), [])[0], lambda k: k.passes, LAZY_BATCH)
            self.queries += len(kept)
            self.keep_cache.update(zip(keep, kept))
            return
        kept, removed = self.query(keep, remove)
        self.queries += len(keep) + len(remove)
        self.keep_cache.update(zip(keep, kept))
        self.remove_cache.update(zip(remove, removed))

    def _update(self, bracket: _Bracket, predicate: Callable[[int], Optional[bool]]) -> None:
        known = {k: predicate(k) for k in set(self.keep_cache) | set(self.remove_cache)}
        if predicate == self._sufficient and self.known_sufficient is not None:
            known.setdefault(self.known_sufficient, True)
        floor = bracket.floor()
        trues = [k for k, v in known.items() if v and k >= floor]
        bracket.hi = min(trues) if trues else None
        if bracket.hi is None and not self.original.passes:
            bracket.lo = -1  # nothing passes yet, and "everything fails" bounds nothing
            return
        limit = bracket.hi if bracket.hi is not None else self.n_features + 1
        falses = [k for k, v in known.items() if v is False and k < limit]
        bracket.lo = max(falses + [floor - 1, -1])

    def _scan(self, count: int) -> List[int]:
        # Sizes not probed yet on ever denser geometric grids over [1, n_features - 1].
        n = self.n_features
        points = 2 * count
        while points <= 4 * n:
            grid = torch.logspace(0.0, float(torch.log10(torch.tensor(float(max(n - 1, 1))))), points)
            fresh = sorted({int(round(float(k))) for k in grid} - set(self.keep_cache))
            fresh = [k for k in fresh if 1 <= k < n]
            if fresh:
                step = max(1, len(fresh) // count)
                return fresh[::step][:count]
            points *= 2
        return []

    def _probes(self, bracket: _Bracket, count: int) -> List[int]:
        if bracket.hi is None and not self.original.passes:
            return self._scan(count) if count >= 1 else []
        lo = max(bracket.lo, bracket.floor() - 1)
        hi = bracket.hi if bracket.hi is not None else self.n_features + 1
        # float32 grids, as the extraction always had: its probed sizes (and figures) stay put.
        return probe_sizes(lo, hi, count, torch.float32)

    def run(self) -> Tuple[Optional[int], Optional[int], Optional[int], Dict[str, bool]]:
        r"""Search; returns the sufficient, sufficient-and-necessary and complete sizes (None when no
        probed prefix satisfies the predicate) and whether each size is exactly resolved."""
        self.keep_cache[self.n_features] = self.original
        # Removing nothing leaves the original; keeping nothing is the baseline, as is removing all.
        self.remove_cache[0] = self.original
        if self.baseline is not None:
            self.keep_cache[0] = self.baseline
        else:
            self._run_probes([0], [])
        self.remove_cache[self.n_features] = self.keep_cache[0]
        sufficient = _Bracket(-1, None, needs_removal=False)
        necessary = _Bracket(-1, None, needs_removal=True)
        complete = _Bracket(
            -1, None, needs_removal=False, floor=lambda: necessary.hi or sufficient.hi or 0
        )
        searches = [(sufficient, self._sufficient), (necessary, self._necessary), (complete, self._complete)]
        if not self.original.passes or self.sufficient_only:
            # Necessity and completeness are about a decision the input has; it has none here.
            searches = searches[:1]
        spendable = self.budget - CERTIFICATION_QUERIES
        while True:
            for bracket, predicate in searches:
                self._update(bracket, predicate)
            open_ = [b for b, _ in searches if b.open()]
            cost_per_probe = sum(2 if b.needs_removal else 1 for b in open_)
            remaining = spendable - self.charged
            if not open_ or remaining < cost_per_probe:
                break
            count = min(self.grid_size, remaining // cost_per_probe)
            keep, remove = [], []
            for bracket in open_:
                ks = self._probes(bracket, count)
                keep += ks
                if bracket.needs_removal:
                    remove += ks
            before = self.charged
            # The sufficient size alone, of an input that passes: a plain bracket, asked lazily.
            self._run_probes(keep, remove, until_one_passes=len(searches) == 1 and self.original.passes)
            if self.charged == before:
                break
        exact = {
            "sufficient": not sufficient.open(),
            "necessary": not necessary.open(),
            "complete": not complete.open(),
        }
        if not self.original.passes or self.sufficient_only:
            return sufficient.hi, None, None, exact
        return sufficient.hi, necessary.hi, complete.hi, exact


def probe_sizes(lo: int, hi: int, count: int, dtype: torch.dtype = torch.float64) -> List[int]:
    r"""Prefix sizes to probe strictly inside a bracket ``(lo, hi)``: the grid of every prefix
    search, the extraction's (:class:`PrefixSearch`) and
    :func:`~captum_freqrex.metrics.minimal_sufficient_prefix`'s.

    ``count`` sizes, geometric while the bracket is wide (``hi > 4 * max(lo, 1)``: an exponential
    search) and evenly spaced once it is narrow (a many-way bisection), rounded into
    ``[lo + 1, hi - 1]``; duplicates are dropped, so fewer may come back.

    Args:
        lo (int): Largest size known to fail (or -1).
        hi (int): Smallest size known to pass (or ``n_features + 1`` when none is known).
        count (int): Sizes wanted.
        dtype (torch.dtype, optional): Precision of the grid (rounding to integers may differ
                    between precisions in rare cases). Default: torch.float64

    Returns:
        list of int: The sizes, ascending; empty when the bracket is closed (``hi - lo <= 1``).
    """
    if hi - lo <= 1 or count < 1:
        return []
    if hi > 4 * max(lo, 1):
        start, stop = torch.log10(torch.tensor([float(max(lo, 1)), float(hi)], dtype=dtype)).tolist()
        grid = torch.logspace(start, stop, count + 2, dtype=dtype)
    else:
        grid = torch.linspace(lo, hi, count + 2, dtype=dtype)
    return sorted({min(max(int(round(float(k))), lo + 1), hi - 1) for k in grid[1:-1]})


def ranking_positions(ranking: Tensor) -> Tensor:
    r"""``(n_features,)``: each feature's place in ``ranking`` (0 for the most responsible)."""
    position = torch.empty_like(ranking)
    position[ranking] = torch.arange(ranking.numel(), device=ranking.device)
    return position


def prefix_masks(ranking: Tensor, sizes: List[int]) -> Tensor:
    r"""Keep-masks ``(len(sizes), n_features)`` of the top-``k`` features of ``ranking`` for each k."""
    position = ranking_positions(ranking)
    bounds = torch.tensor(sizes, device=ranking.device).view(-1, 1)
    return (position.view(1, -1) < bounds).float()


def passing_prefix_size(sets: Optional[Tensor], ranking: Tensor) -> Optional[int]:
    r"""The size of the smallest of ``sets`` that is a prefix of ``ranking`` (its top-``k``).

    The responsibility search returns the sets it saw keep the decision; where one of them is the
    ranking's top (the loud peak that leads it, a search's only set), that prefix is known to
    pass, and the extraction's bracket can start from it.

    Args:
        sets (Tensor, optional): ``(M, n_features)`` keep-masks (bool or 0/1).
        ranking (Tensor): ``(n_features,)`` feature ids, most responsible first.

    Returns:
        int or None: The size; None when no set is a prefix (or there are none).
    """
    if sets is None or not sets.shape[0]:
        return None
    position = ranking_positions(ranking)
    rows = sets.to(ranking.device).bool()
    for size, row in sorted(((int(row.sum()), row) for row in rows), key=lambda pair: pair[0]):
        if size and int(position[row].max()) == size - 1:
            return size
    return None
