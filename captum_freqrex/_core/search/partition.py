"""Causal responsibility by random partition refinement of the feature axis (the ReX manner).

Features are ordered by id (frequency order for the built-in masks). One *search* keeps a current
sufficient set ``S``, a list of contiguous pieces that keeps the decision. At each step it cuts the
largest piece ``P`` of ``S`` into (up to) four contiguous sub-pieces at random cuts and queries the
proper subsets of the sub-pieces together with the rest of ``S`` (up to ``2**4 - 1 = 15`` mutants:
the 14 non-empty proper subsets and ``S`` without ``P``). The piece cut is the one holding the most
causal mass (see below). The subsets are asked in two calls: first ``S`` without ``P`` and each
sub-piece with it (5 mutants); where ``S`` without ``P`` fails and some sub-piece passes with it,
the step is *settled* (the next ``S`` keeps one sub-piece and it carries all of ``P``'s mass,
whatever the larger subsets say), and the other 10 are asked only for the steps left open. The
result is the one asking all 15 gives, for a third of the queries on a settled step (most steps:
51 of 53 on held-out percussion clips, 14 of 20 on the 30 s piano). The budget is charged all 15
mutants of every step, asked or not, so it buys the same steps as when every step asked them all
and the queries not asked are saved: spending them on more steps changed the sets of the clips
that end on the budget both ways, for no fewer queries. Then:

* **credit** - in every mutant that keeps the decision, each kept sub-piece whose removal from that
  mutant loses the decision (a counterfactual cause under that contingency) earns ``1/k``, with ``k``
  the number of kept sub-pieces. A sub-piece the model ignores is never counterfactual and earns
  nothing (ReX credits every kept piece; this is the Halpern-Pearl refinement of it).
* **refinement** - the smallest passing mutant that keeps a credited sub-piece becomes the next
  ``S`` (the smallest passing mutant when none is credited).
* **mass** - each search distributes one unit of causal mass. ``P``'s mass is split among the
  sub-pieces kept in the next ``S`` in proportion to their credit, and they carry it into deeper
  refinement. A credited sub-piece left out (another cause was smaller) passes its share to the
  kept ones; the mean over searches with other random cuts shares the mass between such
  alternatives. When no sub-piece is credited, every subset passes, the empty one too: the rest
  of ``S`` decides without ``P`` (redundant causes), so ``P``'s mass goes to the rest of ``S``.
  Mass therefore only ever rests on the pieces of the current passing set, never on a piece the
  model ignores.
* **undecided roots** - when ``S`` itself does not pass (a target the input does not get; or,
  in ``mode="necessary"``, a baseline that keeps the decision, so removing everything changes
  nothing), a step in which nothing passes keeps ``S`` and cuts again at new random points; the
  first step in which some subset passes (a model that is not monotone: keeping, or removing,
  part of ``S`` does what all of ``S`` does not) starts the refinement from that subset. A
  search that never passes credits nothing: with ``max_depth`` cuts per search, that is a random
  search over unions of pieces, not a proof that no subset passes.

When a search ends (depth, minimum piece size, or query budget) every piece of ``S`` is finalised.
A finalised piece spreads its mass evenly over its features, so the responsibility of a feature is
the mean over searches of (mass / piece size): non-negative, summing to one per example over the
features when every search found a passing mutant. Once the searches have refined their sets down
to single features (``min_part_size=1`` with enough depth and budget), a feature the model ignores
has exactly zero responsibility; a piece the budget left unsplit shares its mass with the ignored
features it holds.

**Stopping.** ``n_samples`` and ``max_queries`` are caps, not quotas: searches run one after another
and the run stops as soon as its answer is settled (``convergence_top_k=None`` runs them all):

* ``"minimal"`` - a search found a passing set of one feature: no smaller set can pass (the empty
  set is the baseline alone, which the anchors query), so further searches could only add
  alternatives of the same size;
* ``"small"`` - a search found a passing set of at most :data:`SMALL_SET` features: another search
  could save a few features at most, and ``explain``'s shrink drops those the set does not need;
* ``"converged"`` - a search ended without a passing set smaller than the smallest found before
  it: the random cuts have stopped improving the answer;

otherwise ``"searches"`` (``n_samples`` ran) or ``"max_queries"`` (the budget ran out); with
``scattered_above`` (:class:`PartitionRefinement`), ``"scattered"``.

**Orders.** "Contiguous" means contiguous along a feature order. The default is frequency order
(feature ids), whose pieces are bands. Causes scattered across the spectrum (a model that needs
some energy in every mel band, say, like the zoo's ``instruments`` CNN on a strings clip) cannot be
separated by bands: every band is needed, and the refinement stalls at large sets. Along another
order the same refinement cuts other sets: ``"interleaved"`` (a random permutation, drawn from the
search's generator: every piece samples the whole spectrum) or ``"energy"`` (loudest features
first: pieces are loudness tiers, which separates a few loud causes from quiet ones wherever they
sit). Everything above holds in any order, including "ignored features get exactly zero";
:class:`~captum_freqrex._core.search.adaptive.AdaptiveRefinement` picks the order per example.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass, field
from typing import Callable, Dict, FrozenSet, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from captum_freqrex._core.spectral.space import Range, ranges_to_mask
from captum_freqrex._core.search.base import RefinementOptions, SearchContext, SearchResult
from captum_freqrex._core.spectral.synthesis import StepQuery

#: Searches refined together in lockstep (their mutants share model calls). One: each search's
#: outcome decides whether the next one runs (the stopping rule of :meth:`_Refiner.run`).
WAVE_SIZE = 1

#: A passing set of at most this many features settles the run (``stopped_by="small"``): another
#: search could save at most a few features, and the shrink that ``explain`` runs next drops the
#: features such a set does not need (measured: the zoo's piano clip, 757 -> 389 queries, same set).
SMALL_SET = 4


@dataclass
class _Step:
    """One pending refinement step of a search: the piece cut and the mutants it needs."""

    search: "_Search"
    piece_index: int
    sub_pieces: List[Range]
    subsets: List[Tuple[int, ...]]


@dataclass
class _Search:
    """State of one refinement search."""

    pieces: List[Range]
    masses: List[float]
    passes: bool
    finalized: List[Tuple[int, int, float]] = field(default_factory=list)
    depth: int = 0
    done: bool = False
    witness: Optional[List[Range]] = None  # the final passing set, when the search found one
    trail: List[List[Range]] = field(default_factory=list)  # the passing sets it narrowed through

    def finalize(self) -> None:
        # A search whose set never reached the target found no cause: it credits nothing.
        if self.passes:
            self.witness = list(self.pieces)
        for (lo, hi), mass in zip(self.pieces, self.masses):
            if mass > 0 and self.passes:
                self.finalized.append((lo, hi, mass / (hi - lo)))
        self.pieces, self.masses, self.done = [], [], True


def _settled_by_one(table: Dict[FrozenSet[int], bool]) -> bool:
    # The empty subset fails and some single sub-piece passes: the step's next S is known.
    return table.get(frozenset()) is False and any(ok for kept, ok in table.items() if len(kept) == 1)


def _size(pieces: List[Range]) -> int:
    """Features in a list of ranges."""
    return sum(hi - lo for lo, hi in pieces)


@functools.lru_cache(maxsize=16)
def _subset_matrix(subsets: Tuple[Tuple[int, ...], ...], n_sub: int) -> Tensor:
    """``(len(subsets), n_sub)`` 0/1: which sub-pieces each subset keeps (cached: copy before use)."""
    matrix = torch.zeros(len(subsets), n_sub)
    for row, subset in enumerate(subsets):
        matrix[row, list(subset)] = 1.0
    return matrix


def _random_cut(lo: int, hi: int, n_sub: int, min_size: int, generator: torch.Generator) -> List[Range]:
    """Cut ``[lo, hi)`` into ``n_sub`` contiguous pieces of at least ``min_size`` at random."""
    spare = hi - lo - n_sub * min_size
    points = torch.randint(0, spare + 1, (n_sub - 1,), generator=generator).sort().values.tolist()
    bounds = [0] + points + [spare]
    pieces, start = [], lo
    for i in range(n_sub):
        size = min_size + bounds[i + 1] - bounds[i]
        pieces.append((start, start + size))
        start += size
    return pieces


class _Refiner:
    r"""Runs the refinement searches of one example (the engine of :class:`PartitionRefinement`).

    Args:
        evaluate (Callable): ``evaluate(queries) -> passes``: a list of :class:`StepQuery` to a
                    ``(N,)`` bool tensor saying which of their mutants (in order) keep the decision.
        n_features (int): Number of features.
        root_passes (bool): Whether the set of all features passes (the unmasked input keeps
                    the decision; ``"necessary"``: the baseline alone changes it).
        options (RefinementOptions): The knobs.
        generator (torch.Generator): Source of the random cuts.
        device (torch.device): Where keep-masks are built.
        energy (Tensor, optional): ``(n_features,)`` spectral energy of each feature, in the
                    refinement's order. When given, the next ``S`` is chosen among the passing
                    mutants with the fewest sub-pieces as the one carrying the most energy (see
                    :class:`PartitionRefinement`'s ``prefer``); otherwise as the fewest features.
        scattered_above (int, optional): When the first search's smallest passing set holds more
                    features than this, stop there with ``stopped_by="scattered"`` (the order did
                    not separate the causes; the caller may try another). None: never.
    """

    def __init__(
        self,
        evaluate: Callable[[List[StepQuery]], Tensor],
        n_features: int,
        root_passes: bool,
        options: RefinementOptions,
        generator: torch.Generator,
        device: torch.device,
        energy: Optional[Tensor] = None,
        scattered_above: Optional[int] = None,
        record_trail: bool = False,
    ) -> None:
        options.validate()
        self.scattered_above = scattered_above
        self.record_trail = record_trail
        # Prefix sums of the energy: the energy of a range of features in O(1).
        self._energy_sums = (
            None if energy is None else [0.0] + torch.cumsum(energy.double().cpu(), 0).tolist()
        )
        self.evaluate = evaluate
        self.n_features = n_features
        self.root_passes = root_passes
        self.options = options
        self.generator = generator
        self.device = device
        self.queries = 0
        # The budget is charged every mutant of a step, asked or not (see _verdicts): the budget
        # buys the same steps whichever are settled early, and the mutants not asked are saved.
        self.charged = 0
        self.searches: List[_Search] = []
        self.stopped_by = "searches"
        self.stalled = False  # the first search stopped early as scattered (see _stalls)

    def _choice_key(self, sub: List[Range]) -> Callable[[frozenset], Tuple[float, ...]]:
        sizes = [hi - lo for lo, hi in sub]
        if self._energy_sums is None:
            return lambda kept: (sum(sizes[i] for i in kept),)
        sums = self._energy_sums
        energies = [sums[hi] - sums[lo] for lo, hi in sub]
        # Fewest sub-pieces first (the set narrows as fast), then the loudest: among equally
        # small causes the one that carries the signal, not a lone near-empty bin that a
        # normalising front end turns into a full-scale tone; then the fewest features.
        return lambda kept: (len(kept), -sum(energies[i] for i in kept), sum(sizes[i] for i in kept))

    def _plan(self, search: _Search) -> Optional[_Step]:
        opts = self.options
        # Refine the piece holding the most causal mass; massless pieces have nothing to resolve.
        candidates = [
            i
            for i, (lo, hi) in enumerate(search.pieces)
            if search.masses[i] > 0 and hi - lo >= 2 * opts.min_part_size
        ]
        if search.depth >= opts.max_depth or not candidates:
            return None
        index = max(candidates, key=lambda i: (search.masses[i], search.pieces[i][1] - search.pieces[i][0], -i))
        lo, hi = search.pieces[index]
        n_sub = min(opts.n_pieces, (hi - lo) // opts.min_part_size)
        sub = _random_cut(lo, hi, n_sub, opts.min_part_size, self.generator)
        subsets = [c for r in range(n_sub) for c in itertools.combinations(range(n_sub), r)]
        return _Step(search, index, sub, subsets)

    @staticmethod
    def _query(step: _Step, subsets: Sequence[Tuple[int, ...]]) -> StepQuery:
        context = [p for i, p in enumerate(step.search.pieces) if i != step.piece_index]
        parts = ([context] if context else []) + [[piece] for piece in step.sub_pieces]
        keeps = _subset_matrix(tuple(subsets), len(step.sub_pieces))
        columns = ([torch.ones(len(subsets), 1)] if context else []) + [keeps]
        return StepQuery(parts, torch.cat(columns, dim=1))

    def _ask(self, steps: List[_Step], subsets: List[List[Tuple[int, ...]]]) -> List[Dict[FrozenSet[int], bool]]:
        # One model call for the given subsets of each step; their verdicts by subset.
        passed = self.evaluate([self._query(step, chosen) for step, chosen in zip(steps, subsets)]).tolist()
        self.queries += len(passed)
        tables, offset = [], 0
        for chosen in subsets:
            tables.append({frozenset(s): ok for s, ok in zip(chosen, passed[offset : offset + len(chosen)])})
            offset += len(chosen)
        return tables

    def _verdicts(self, steps: List[_Step]) -> List[Dict[FrozenSet[int], bool]]:
        # The rest of S and each sub-piece with it first (one call). Where the rest alone fails and
        # some sub-piece passes with it, that step is settled: the next S keeps one sub-piece (one
        # piece beats any larger passing subset in _apply's choice, and it carries the whole mass),
        # so the larger subsets' verdicts would change nothing and are not asked. The other steps
        # ask them in a second call: 5 mutants instead of 15 on a settled step of 4 sub-pieces.
        tables = self._ask(steps, [[s for s in step.subsets if len(s) <= 1] for step in steps])
        open_steps = [i for i, table in enumerate(tables)
                      if not _settled_by_one(table) and len(table) < len(steps[i].subsets)]
        if open_steps:
            larger = self._ask([steps[i] for i in open_steps],
                               [[s for s in steps[i].subsets if len(s) > 1] for i in open_steps])
            for i, more in zip(open_steps, larger):
                tables[i].update(more)
        return tables

    def _apply(self, step: _Step, table: Dict[FrozenSet[int], bool]) -> None:
        # ``table``: the verdicts asked, by the subset of sub-pieces kept (every proper subset, or
        # the empty one and the single pieces where those settle the step; see _verdicts).
        search, sub = step.search, step.sub_pieces
        n_sub = len(sub)
        table = {**table, frozenset(range(n_sub)): search.passes}
        credit = [0.0] * n_sub
        for kept, ok in table.items():
            if ok and kept:
                for piece in kept:
                    if table.get(kept - {piece}) is False:  # not asked: no evidence either way
                        credit[piece] += 1.0 / len(kept)
        passing = [s for s in sorted(table, key=lambda s: (len(s), sorted(s))) if table[s]]
        mass = search.masses[step.piece_index]
        search.depth += 1
        if not passing:
            # Only possible while S itself misses the target (a target the input does not get):
            # no subset of this cut reaches it either. Keep S and cut again: a later cut may
            # separate what reaches the target from what stands in its way.
            return
        # Refine towards the causes: the smallest passing mutant that keeps a credited sub-piece
        # (so a baseline that passes on its own does not end the search).
        credited = [s for s in passing if any(credit[i] > 0 for i in s)]
        chosen = min(credited or passing, key=self._choice_key(sub))
        context = [i for i in range(len(search.pieces)) if i != step.piece_index]
        del search.pieces[step.piece_index], search.masses[step.piece_index]
        # The mass follows what the search keeps refining, so it ends on the features of the final
        # passing set and never on features the model ignores: a credited sub-piece left out of
        # the chosen mutant (another cause was smaller) passes its mass to the chosen ones, and
        # the mean over searches shares it between the alternatives.
        kept_credit = sum(credit[i] for i in chosen)
        for i, (lo, hi) in enumerate(sub):
            if i in chosen:
                search.pieces.append((lo, hi))
                search.masses.append(mass * credit[i] / kept_credit if kept_credit > 0 else 0.0)
        if kept_credit == 0:
            # Every subset passes, the empty one too: the rest of S decides without the cut piece
            # (redundant causes), or the baseline decides on its own. The piece is no cause under
            # this contingency; its mass goes to the rest of S (none left: this search found none).
            rest = search.masses[: len(context)]
            total_rest = sum(rest)
            if total_rest > 0:
                for i, m in enumerate(rest):
                    search.masses[i] = m + mass * m / total_rest
        search.passes = True
        if self.record_trail and search.pieces:
            search.trail.append(list(search.pieces))
        if not any(m > 0 for m in search.masses):
            search.witness = list(search.pieces)
            search.pieces, search.masses, search.done = [], [], True

    def _run_wave(self, n_new: int) -> None:
        wave = [
            _Search([(0, self.n_features)], [1.0], self.root_passes) for _ in range(n_new)
        ]
        self.searches.extend(wave)
        while True:
            steps = [step for step in map(self._plan, (s for s in wave if not s.done)) if step]
            for search in wave:
                if not search.done and all(step.search is not search for step in steps):
                    search.finalize()
            if not steps:
                return
            budget = self.options.max_queries
            if budget is not None:
                affordable, cost = [], 0
                for step in steps:
                    if self.charged + cost + len(step.subsets) > budget:
                        break
                    affordable.append(step)
                    cost += len(step.subsets)
                for step in steps[len(affordable):]:
                    step.search.finalize()
                    self.stopped_by = "max_queries"
                steps = affordable
                if not steps:
                    return
            for step, table in zip(steps, self._verdicts(steps)):
                self.charged += len(step.subsets)
                before = _size(step.search.pieces), step.search.passes
                self._apply(step, table)
                if self._stalls(step.search, before):
                    step.search.finalize()
                    self.stalled = True
            if self.stalled:
                return

    def _stalls(self, search: _Search, before: Tuple[int, bool]) -> bool:
        # The first search in an order that does not separate the causes: a step on a passing
        # set kept every sub-piece (no proper subset passed), and the set still holds more than
        # scattered_above features. Deeper steps would only trim slivers off a set this large.
        if self.scattered_above is None or len(self.searches) != WAVE_SIZE or search.done or not before[1]:
            return False
        size = _size(search.pieces)
        return size == before[0] and size > self.scattered_above

    def responsibility(self) -> Tensor:
        """Mean over the searches run so far of each feature's finalised mass density, ``(n_features,)``."""
        diff = torch.zeros(self.n_features + 1, dtype=torch.float64)
        scale = 0.0
        for search in self.searches:
            for lo, hi, density in search.finalized:
                diff[lo] += density
                diff[hi] -= density
                scale += density
        values = diff.cumsum(0)[: self.n_features]
        # The running sum leaves rounding residue (~1e-19) past the end of each piece; a feature
        # no search credited must read exactly 0, never a tiny positive or negative number.
        values[values.abs() <= 64 * torch.finfo(torch.float64).eps * scale] = 0.0
        return values / max(len(self.searches), 1)

    def nesting(self) -> Tensor:
        r"""Per feature, how deep a passing set held it: ``(n_features,)`` float64.

        The passing sets a search narrows through are nested, ``S_1 ⊃ S_2 ⊃ ...``, and each was a
        query that kept the decision; a feature gets the largest ``d`` such that ``S_d`` holds it
        (over the searches; 0: in none). Ranked by it, the prefixes at the sizes of the ``S_d``
        are passing sets. Needs ``record_trail``.
        """
        depth = torch.zeros(self.n_features + 1, dtype=torch.float64)
        for search in self.searches:
            for d, pieces in enumerate(search.trail, 1):
                for lo, hi in pieces:
                    depth[lo:hi] = torch.clamp(depth[lo:hi], min=float(d))
        return depth[: self.n_features]

    def witnesses(self) -> List[List[Range]]:
        """The final passing set of every search that found one (each verified by a query), non-empty ones."""
        return [s.witness for s in self.searches if s.witness]

    def _smallest(self) -> Optional[int]:
        """Features in the smallest passing set found so far (None: none found)."""
        sizes = [sum(hi - lo for lo, hi in w) for w in self.witnesses()]
        return min(sizes) if sizes else None

    def _scattered(self) -> bool:
        # Judged on the first search alone: its set is what this order can narrow to at once.
        if self.scattered_above is None or len(self.searches) != WAVE_SIZE:
            return False
        smallest = self._smallest()
        return self.stalled or smallest is None or smallest > self.scattered_above

    def run(self) -> Tensor:
        r"""Run waves of searches until ``n_searches``, the budget, or convergence; return responsibility."""
        opts = self.options
        previous = None
        while len(self.searches) < opts.n_searches:
            if opts.max_queries is not None and self.charged + 2**opts.n_pieces - 1 > opts.max_queries:
                self.stopped_by = "max_queries"
                break
            self._run_wave(min(WAVE_SIZE, opts.n_searches - len(self.searches)))
            if self.stopped_by == "max_queries":  # a search cut short by the budget says nothing of scatter
                break
            if self._scattered():
                self.stopped_by = "scattered"
                break
            if opts.convergence_top_k is not None and len(self.searches) < opts.n_searches:
                smallest = self._smallest()
                if smallest is not None and smallest <= 1:
                    self.stopped_by = "minimal"
                    break
                if smallest is not None and smallest <= SMALL_SET:
                    self.stopped_by = "small"
                    break
                if smallest is not None and previous is not None and smallest >= previous:
                    self.stopped_by = "converged"
                    break
                previous = smallest
        return self.responsibility()


#: Built-in feature orders of :class:`PartitionRefinement`.
ORDERS = ("frequency", "interleaved", "energy")

#: How a refinement step picks the next passing set (see :class:`PartitionRefinement`).
PREFERENCES = ("energy", "size")

OrderLike = Union[str, Tensor]


def check_order(order: OrderLike) -> None:
    """Raise a clear error for an order that is neither a built-in name nor a tensor."""
    if isinstance(order, str):
        if order not in ORDERS:
            raise ValueError(f"order must be one of {', '.join(map(repr, ORDERS))} or a permutation tensor, got {order!r}")
    elif not isinstance(order, Tensor):
        raise TypeError(f"order must be a string or a permutation tensor, got {type(order).__name__}")


def feature_order(order: OrderLike, context: SearchContext) -> Optional[Tensor]:
    r"""The permutation ``(n_features,)`` (position -> feature id) of an order; None for frequency order.

    ``"interleaved"`` draws a random permutation from ``context.generator``; ``"energy"`` sorts by
    descending spectral energy (ties by id); a tensor must be a permutation of the feature ids.
    """
    n = context.n_features
    if isinstance(order, Tensor):
        perm = order.reshape(-1).long().cpu()
        if perm.numel() != n or not torch.equal(perm.sort().values, torch.arange(n)):
            raise ValueError(f"an order tensor must be a permutation of the {n} feature ids")
        return perm
    if order == "frequency":
        return None
    if order == "interleaved":
        return torch.randperm(n, generator=context.generator)
    return context.loudest_first()


def evaluate_along(context: SearchContext, perm: Optional[Tensor]) -> Callable[[List[StepQuery]], Tensor]:
    r"""``evaluate(queries) -> passes`` for steps whose ranges are positions along ``perm``.

    Frequency order (``perm`` None) takes the context's fast path; any other order turns each
    step's sets into masks over feature ids, a model batch at a time.
    """
    if perm is None:
        return context.evaluate
    position = torch.empty_like(perm)
    position[perm] = torch.arange(perm.numel())
    position = position.to(context.device)

    def evaluate(queries: List[StepQuery]) -> Tensor:
        verdicts: List[Tensor] = []
        chunk: List[StepQuery] = []
        rows = 0
        for query in queries + [None]:  # None flushes the last chunk
            size = 0 if query is None else query.combinations.shape[0]
            if chunk and (query is None or rows + size > context.batch_size):
                masks = torch.cat([q.keep_masks(context.n_features, context.device) for q in chunk])
                verdicts.append(context.evaluate_sets(masks[:, position]).passes)
                chunk, rows = [], 0
            if query is not None:
                chunk.append(query)
                rows += size
        return torch.cat(verdicts) if verdicts else torch.zeros(0, dtype=torch.bool)

    return evaluate


class PartitionRefinement:
    r"""Responsibility by random partition refinement (the default search; see the module docstring).

    Args:
        order (str or Tensor, optional): The feature order along which pieces are contiguous:
                    ``"frequency"`` (feature ids: pieces are bands), ``"interleaved"`` (a random
                    permutation per example: pieces sample the whole spectrum), ``"energy"``
                    (loudest first: pieces are loudness tiers), or a permutation tensor of the
                    feature ids. Frequency order synthesises a step's mutants from a few part
                    waveforms; the others synthesise each mutant on its own (one inverse transform
                    per mutant). Default: ``"frequency"``
        prefer (str, optional): Which passing mutant a step refines next when several keep a
                    credited sub-piece: ``"energy"``, the one with the fewest sub-pieces and then
                    the most spectral energy (among equally small causes, the one that carries the
                    signal: a set that sits at the spectral peaks rather than in near-empty bins),
                    or ``"size"``, the one with the fewest features (the smallest sets, wherever
                    they lie). ``"energy"`` puts sets of normalising pitch models at the harmonics
                    (tests/test_ranking.py) instead of in near-empty bins a normalising front end
                    turns into full-scale tones; the louder of two alternative causes then takes
                    all the mass. Default: ``"energy"``
        scattered_above (int, optional): Give up after the first search when its smallest passing
                    set holds more features than this (``stopped_by="scattered"``): the order did
                    not separate the causes, and :class:`~captum_freqrex._core.search.auto.AutoSearch`
                    then tries other orders. The first search stops there at once when one of its
                    steps narrows nothing (no proper union of the sub-pieces passes) on a set of
                    more features than this: deeper steps would only trim slivers off it.
                    Default: None (never)
        nesting (bool, optional): Also return, as ``details["nesting"]`` (``(n_features,)``
                    float64 per feature id), how deep a passing set of the searches held each
                    feature (see :meth:`_Refiner.nesting`): ranked by it, the prefixes at the
                    sizes of the sets a search narrowed through keep the decision. Default: False

    Uses every knob of ``context.options`` (``n_samples``, ``max_depth``, ``min_part_size``,
    ``n_pieces``, ``max_queries``, ``convergence_top_k``).
    """

    def __init__(
        self, order: OrderLike = "frequency", prefer: str = "energy", scattered_above: Optional[int] = None,
        nesting: bool = False,
    ) -> None:
        check_order(order)
        if prefer not in PREFERENCES:
            raise ValueError(f"prefer must be one of {PREFERENCES}, got {prefer!r}")
        if scattered_above is not None and (
            isinstance(scattered_above, bool) or not isinstance(scattered_above, int) or scattered_above < 0
        ):
            raise ValueError(f"scattered_above must be None or a non-negative int, got {scattered_above!r}")
        self.order = order
        self.prefer = prefer
        self.scattered_above = scattered_above
        self.nesting = bool(nesting)

    def __repr__(self) -> str:
        order = self.order if isinstance(self.order, str) else "<permutation>"
        scattered = "" if self.scattered_above is None else f", scattered_above={self.scattered_above}"
        nesting = ", nesting=True" if self.nesting else ""
        return f"PartitionRefinement(order={order!r}, prefer={self.prefer!r}{scattered}{nesting})"

    def run(self, context: SearchContext) -> SearchResult:
        r"""Refine along the order; responsibility is returned per feature id."""
        perm = feature_order(self.order, context)
        energy = None
        if self.prefer == "energy":
            energy = context.energy if perm is None else context.energy[perm.to(context.energy.device)]
        refiner = _Refiner(
            evaluate_along(context, perm), context.n_features, context.root_passes, context.options,
            context.generator, context.device, energy, self.scattered_above, self.nesting,
        )
        values = refiner.run()
        witnesses = refiner.witnesses()
        sets = ranges_to_mask(witnesses, context.n_features, context.device).bool() if witnesses else None
        nesting = refiner.nesting() if self.nesting else None
        if perm is not None:
            back = torch.empty_like(values)
            back[perm] = values
            values = back
            if nesting is not None:
                back = torch.empty_like(nesting)
                back[perm] = nesting
                nesting = back
            if sets is not None:
                position = torch.empty_like(perm)
                position[perm] = torch.arange(perm.numel())
                sets = sets[:, position.to(sets.device)]
        if sets is not None:
            sets = sets[sets.sum(dim=1).argsort(stable=True)]
        order = self.order if isinstance(self.order, str) else "custom"
        details = {"order": order} if nesting is None else {"order": order, "nesting": nesting}
        return SearchResult(values, refiner.queries, refiner.stopped_by, details, sets)
