"""Band screening: hierarchical screening of sets, for the fewest frequencies that flip a decision.

Meant for ``mode="necessary"``, where a set *passes* when removing it from the input changes the
decision. Captum's FeatureAblation removes each band once and ranks the bands by the drop of the
target's score; a top-k of single frequencies then has to be guessed inside the best band (its
loudest bins). Band screening spends the same queries on a tree instead:

1. **Screen bands.** The feature axis is cut into ``n_bands`` contiguous bands of equal width
   and, screened alongside them, into ``log_bands`` log-width bands, of which those narrower than
   an equal-width band are kept: the low end of an rfft axis, where one equal-width band lumps
   together the narrow bands a log-frequency model hears apart (speech models flip on a 9-bin
   low band). On a feature axis that is not one rfft axis ordered by frequency (grouped bands,
   STFT cells, several channels) the log-width bands refine only its first features:
   ``log_bands=0`` turns them off. Each band's removal is queried (one batch); every screened set
   gets a verdict (does its removal flip the decision?) and a graded score (how far behind the
   target falls).
2. **Descend.** The next set to open is the deepest screened set whose removal flipped the
   decision (best score first); when none is left, the best-scoring set. Opening a set screens its
   ``branching`` equal sub-bands and, as one more set, its ``core_size`` loudest features (its
   *core*); once it holds at most ``leaf_size`` features (or is a core), each of its features
   alone. So the first queries after the bands go to the single frequencies inside the band that
   flips most clearly, and every later batch to the next most promising band. The cores are there
   because these models are not monotone in what is removed: removing the few peaks of a band can
   flip a decision that removing the whole band (peaks and floor) keeps, and no contiguous
   sub-band holds those peaks without much of the floor.
3. **Responsibility.** A feature's value is ``1 / |R|`` for the smallest screened set ``R``
   holding it whose removal flipped the decision: 1 for a frequency whose removal alone flips it
   (a counterfactual cause, responsibility 1 in the Halpern-Pearl sense), ``1/|R|`` - the degree
   ``R`` would give each member were it a minimal cause - for the members of a flipping band that
   was not resolved further, 0 for features in no flipping set (the whole spectrum does not
   count). Values are not normalised.

The screening runs whether or not removing the whole spectrum (the baseline alone) changes the
decision: a model need not be monotone, and removing one band can change a decision that removing
everything keeps (a classifier that hears silence as the clip's class, say). Only when no screened
set flips the decision within the budget is every responsibility 0.

The search stops at the first single feature whose removal alone flips the decision (nothing
smaller flips it; ``stop_at_single=False`` screens on), when the budget (``max_queries``) cannot pay
for the next opening, or when no set is left to open. It ignores the refinement's other knobs. Queries: the first level's bands to
start (``n_bands`` plus the narrow log-width ones: 70 on 8,001 bins with the defaults), then
``branching + 1`` (with a core) or at most ``leaf_size`` per opening; with the defaults (48, 8,
16, 32, 5) a single flipping frequency on 8,001 bins is reached after at most 94 queries when one
exists under the best band.

When to use it: flip rates and manipulation (the fewest frequencies whose removal fools the
model). It is no estimate of responsibility over the whole spectrum (the refinement is), and it
looks only for removals of contiguous bands, of the cores of the bands it opens and of single
features: a decision that flips only when frequencies scattered over several bands are removed
together is out of its reach (every band then screens as "no flip" and the descent follows the
graded scores, with no guarantee).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

import torch
from torch import Tensor

from captum_freqrex._core.spectral.space import Range, ranges_to_mask
from captum_freqrex._core.search.base import SearchContext, SearchResult
from captum_freqrex._utils.validation import as_int


@dataclass
class _Node:
    lo: int
    hi: int
    depth: int
    passes: bool = False
    score: float = float("-inf")
    opened: bool = False
    children: List["_Node"] = field(default_factory=list)
    core: Optional[List[int]] = None  # a band's loudest features, screened as one set

    @property
    def size(self) -> int:
        return len(self.core) if self.core is not None else self.hi - self.lo

    def ranges(self) -> List[Range]:
        return [(i, i + 1) for i in self.core] if self.core is not None else [(self.lo, self.hi)]


def _equal_cuts(lo: int, hi: int, parts: int) -> List[Range]:
    bounds = torch.linspace(lo, hi, min(parts, hi - lo) + 1).round().long().tolist()
    return [(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def _log_cuts(n: int, parts: int) -> List[Range]:
    # Geometric bounds from feature 1 up, feature 0 (DC) alone first; at the bottom, bands
    # narrower than one feature collapse into single features.
    bounds = sorted({0, *torch.logspace(0, float(torch.log10(torch.tensor(float(n)))), parts + 1).round().long().tolist()})
    bounds = [b for b in bounds if b <= n]
    if bounds[-1] != n:
        bounds.append(n)
    return [(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def _first_level(n: int, n_bands: int, log_bands: int) -> List[Range]:
    # Equal-width bands, plus the log-width bands narrower than them: the low end, where one
    # equal-width band spans many of the narrow bands a log-frequency model hears apart.
    equal = _equal_cuts(0, n, n_bands)
    if log_bands < 2:
        return equal
    width = n / min(n_bands, n)
    extra = [c for c in _log_cuts(n, log_bands) if c[1] - c[0] < width and c not in equal]
    return equal + extra


class BandScreening:
    r"""Hierarchical screening of contiguous bands and their loudest features, then of single features (see the module docstring).

    Args:
        n_bands (int, optional): Equal-width bands screened first. Default: 48
        branching (int, optional): Sub-bands screened when a band is opened. Default: 8
        leaf_size (int, optional): A band of at most this many features is opened feature by
                    feature. Default: 16
        log_bands (int, optional): Log-width bands cut at the first level; the ones narrower
                    than an equal-width band are screened with them (0 or 1: none). Default: 32
        core_size (int, optional): Opening a band also screens its ``core_size`` loudest
                    features as one set (0: no cores). Default: 5
        stop_at_single (bool, optional): Stop at the first single feature whose removal alone
                    flips the decision (``stopped_by="minimal"``): no smaller removal exists, so
                    the rest of the budget could only find other single flips. False screens on
                    until the budget or the tree runs out. Default: True

    The budget is ``context.options.max_queries``; with no budget (``max_queries=None``) the
    screening opens every band and core down to single features (a core's features are screened
    again as part of their band: cores pay off under a budget).
    """

    def __init__(self, n_bands: int = 48, branching: int = 8, leaf_size: int = 16, log_bands: int = 32,
                 core_size: int = 5, stop_at_single: bool = True) -> None:
        self.n_bands = as_int(n_bands, "n_bands", minimum=2)
        self.log_bands = as_int(log_bands, "log_bands", minimum=0)
        self.branching = as_int(branching, "branching", minimum=2)
        self.leaf_size = as_int(leaf_size, "leaf_size", minimum=1)
        self.core_size = as_int(core_size, "core_size", minimum=0)
        if not isinstance(stop_at_single, bool):
            raise TypeError(f"stop_at_single must be True or False, got {stop_at_single!r}")
        self.stop_at_single = stop_at_single

    def __repr__(self) -> str:
        return (f"BandScreening(n_bands={self.n_bands}, branching={self.branching}, leaf_size={self.leaf_size}, "
                f"log_bands={self.log_bands}, core_size={self.core_size}, stop_at_single={self.stop_at_single})")

    def _children(self, node: _Node, energy: Tensor) -> List[_Node]:
        if node.core is not None or (node.depth > 0 and node.size <= self.leaf_size):
            features = node.core if node.core is not None else range(node.lo, node.hi)
            return [_Node(i, i + 1, node.depth + 1) for i in features]
        cuts = _first_level(node.hi, self.n_bands, self.log_bands) if node.depth == 0 else _equal_cuts(node.lo, node.hi, self.branching)
        children = [_Node(lo, hi, node.depth + 1) for lo, hi in cuts]
        if node.depth > 0 and node.size > self.core_size > 0:
            loudest = torch.topk(energy[node.lo : node.hi], self.core_size).indices + node.lo
            children.append(_Node(node.lo, node.hi, node.depth + 1, core=sorted(loudest.tolist())))
        return children

    @staticmethod
    def _next(nodes: List[_Node]) -> Optional[_Node]:
        closed = [n for n in nodes if not n.opened and n.size > 1]
        if not closed:
            return None
        flipping = [n for n in closed if n.passes]
        if flipping:
            return max(flipping, key=lambda n: (n.depth, n.score, -n.lo))
        return max(closed, key=lambda n: (n.score, n.depth, -n.lo))

    def run(self, context: SearchContext) -> SearchResult:
        r"""Screen bands and descend into the ones whose removal flips the decision."""
        n = context.n_features
        values = torch.zeros(n, dtype=torch.float64)
        # The root is opened first whatever its verdict: when removing everything does not change
        # the decision, removing a band still may (a non-monotone model).
        root = _Node(0, n, 0, passes=context.root_passes, score=float("inf"))
        nodes = [root]
        stopped_by = "searches"
        while True:
            node = self._next(nodes)
            if node is None:
                break
            children = self._children(node, context.energy)
            remaining = context.remaining
            if remaining is not None and len(children) > remaining:
                stopped_by = "max_queries"
                break
            masks = ranges_to_mask([c.ranges() for c in children], n, context.device)
            verdicts = context.evaluate_sets(masks)
            for child, passed, score in zip(children, verdicts.passes.tolist(), verdicts.score.tolist()):
                child.passes, child.score = bool(passed), float(score)
            node.opened, node.children = True, children
            nodes.extend(children)
            if self.stop_at_single and any(child.passes and child.size == 1 for child in children):
                stopped_by = "minimal"
                break
        # Smallest flipping set per feature: larger sets first, smaller ones overwrite.
        for node in sorted((m for m in nodes if m.passes and m is not root), key=lambda m: -m.size):
            for lo, hi in node.ranges():
                values[lo:hi] = 1.0 / node.size
        # Distinct features: a core's features can be screened again as part of their band.
        flips = len({m.lo for m in nodes if m.passes and m.size == 1})
        core_flips = sum(1 for m in nodes if m.passes and m.core is not None)
        details = {"screened": len(nodes) - 1, "single_feature_flips": flips, "core_flips": core_flips}
        return SearchResult(values, context.queries, stopped_by, details)
