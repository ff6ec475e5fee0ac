"""The responsibility-search protocol: what a search gets for one example and what it gives back.

A *search* decides which sets of frequency features to query and turns the model's verdicts into a
responsibility per feature. :class:`FreqReX` builds one :class:`SearchContext` per example and calls
``search.run(context)``; everything model-, spectrum- and batch-related stays behind the context's
two evaluation callables, so a new strategy is one module with a ``run`` method and no edit to
``freqrex.py``::

    class LoudestFirst:
        def run(self, context: SearchContext) -> SearchResult:
            return SearchResult(context.energy.clone(), queries=0, stopped_by="searches")

    FreqReX(model, search=LoudestFirst())

Sets, not mutants. A search speaks of *sets* of features and whether a set *passes*; the mode
(``"sufficient"`` or ``"necessary"``) says what that means, and the context does the rest:

* ``"sufficient"``: the set is kept alone, every other feature at the baseline; it passes when
  the model keeps the explained decision;
* ``"necessary"``: the set is removed from the input; it passes when the decision clearly
  changes (a tie does not).

Built-in searches: :class:`~captum_freqrex._core.search.partition.PartitionRefinement` (the default:
random partition refinement, over contiguous pieces or along another feature order),
:class:`~captum_freqrex._core.search.adaptive.AdaptiveRefinement` (probes several orders at the root and
refines along the one that narrows the set most) and
:class:`~captum_freqrex._core.search.band_screening.BandScreening` (hierarchical screening of removals,
for ``mode="necessary"``: the fewest frequencies that flip the decision).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Dict, NamedTuple, Optional, Protocol, Sequence
from typing import runtime_checkable

import torch
from torch import Tensor

from captum_freqrex._core.spectral.space import loudest_order
from captum_freqrex._core.spectral.synthesis import StepQuery
from captum_freqrex._utils.validation import as_int


class SetVerdicts(NamedTuple):
    r"""The model's verdicts on a batch of sets.

    Attributes:
        passes (Tensor): ``(N,)`` bool, whether each set passes (see the module docstring).
        score (Tensor): ``(N,)`` float64, graded evidence for passing: higher is closer to passing.
                    The target's margin over the strongest other class in confidence for
                    ``"sufficient"`` and its negative for ``"necessary"`` (so a removal that leaves
                    the target far behind scores high); the confidence (resp. minus it) for
                    decisions without margins. Only comparisons within one example are meaningful.
    """

    passes: Tensor
    score: Tensor


@dataclass
class RefinementOptions:
    r"""Knobs of the partition refinement (see :meth:`FreqReX.attribute` for their meaning)."""

    n_searches: int = 8
    max_depth: int = 24
    min_part_size: int = 1
    n_pieces: int = 4
    max_queries: Optional[int] = 1000
    convergence_top_k: Optional[int] = 10

    def validate(self) -> None:
        for name, label in (
            ("n_searches", "n_samples"), ("max_depth", "max_depth"), ("min_part_size", "min_part_size"),
            ("n_pieces", "n_pieces"), ("max_queries", "max_queries"), ("convergence_top_k", "convergence_top_k"),
        ):
            value = getattr(self, name)
            if value is not None or name in ("n_searches", "max_depth", "min_part_size", "n_pieces"):
                setattr(self, name, as_int(value, label))
        checks = [
            (self.n_searches >= 1, f"n_samples (searches) must be >= 1, got {self.n_searches}"),
            (self.max_depth >= 1, f"max_depth must be >= 1, got {self.max_depth}"),
            (self.min_part_size >= 1, f"min_part_size must be >= 1, got {self.min_part_size}"),
            (2 <= self.n_pieces <= 8, f"n_pieces must be in [2, 8], got {self.n_pieces}"),
            (
                self.max_queries is None or self.max_queries >= 2**self.n_pieces - 1,
                f"max_queries must be None or >= {2**self.n_pieces - 1} (one refinement step), "
                f"got {self.max_queries}",
            ),
            (
                self.convergence_top_k is None or self.convergence_top_k >= 1,
                f"convergence_top_k must be None or >= 1, got {self.convergence_top_k}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


@dataclass
class SearchContext:
    r"""Everything a responsibility search receives for one example.

    A search evaluates sets through two counted methods: :meth:`evaluate` takes refinement steps
    (:class:`~captum_freqrex._core.spectral.synthesis.StepQuery`: sets as unions of parts, each part a
    list of contiguous feature ranges; their waveforms are sums of a few part waveforms, the fast
    path) and returns ``(N,)`` bool verdicts; :meth:`evaluate_sets` takes ``(N, n_features)`` set
    masks of any shape (each set's waveform synthesised from its keep-mask, by the formula
    :meth:`Explanation.waveform` uses, not from part waveforms) and returns :class:`SetVerdicts` with graded scores.
    Both batch their sets into model calls of at most ``batch_size`` rows.

    Attributes:
        evaluate_steps (Callable): The uncounted callable behind :meth:`evaluate`.
        evaluate_masks (Callable): The uncounted callable behind :meth:`evaluate_sets`.
        n_features (int): Number of features.
        root_passes (bool): Whether the set of all features passes (``"sufficient"``: the input keeps
                    the decision; ``"necessary"``: the baseline alone changes it). False does
                    not mean that no smaller set passes (a model need not be monotone), so a
                    search should search anyway.
        options (RefinementOptions): The caller's search knobs (``n_samples``, ``max_depth``, ...,
                    ``max_queries``); a search honours ``max_queries`` and may ignore the rest.
        generator (torch.Generator): The only source of randomness (seeded per example).
        device (torch.device): Where masks are built.
        energy (Tensor): ``(n_features,)`` float64 spectral energy ``|X - Xb|^2`` of each feature.
        mode (str): ``"sufficient"`` or ``"necessary"``.
        batch_size (int): Most sets per model call.
        queries (int): Sets evaluated so far through the two methods.
        empty_passes (bool, optional): Whether the empty set passes, where the caller already
                    asked the model (``"sufficient"``: the baseline alone keeps the decision); a
                    search may read it instead of querying the empty set. None: not known.
        empty_score (float, optional): The empty set's graded score (as
                    :attr:`SetVerdicts.score`), where the caller already asked the model
                    (``"necessary"``: the unmasked input, nothing removed). None: not known.
        energy_order (Tensor, optional): The features by descending ``energy``, ties by
                    ascending id, where the caller has it (read through :meth:`loudest_first`).
    """

    evaluate_steps: Callable[[Sequence[StepQuery]], Tensor]
    evaluate_masks: Callable[[Tensor], SetVerdicts]
    n_features: int
    root_passes: bool
    options: RefinementOptions
    generator: torch.Generator
    device: torch.device
    energy: Tensor
    mode: str = "sufficient"
    batch_size: int = 64
    queries: int = 0
    empty_passes: Optional[bool] = None
    empty_score: Optional[float] = None
    energy_order: Optional[Tensor] = None

    def loudest_first(self) -> Tensor:
        """The features by descending energy, ties by ascending id (a stable sort, on the CPU)."""
        if self.energy_order is None:
            self.energy_order = loudest_order(self.energy)
        return self.energy_order

    def evaluate(self, queries: Sequence[StepQuery]) -> Tensor:
        """SetVerdicts ``(N,)`` bool on the sets of refinement steps (see the class docstring)."""
        passed = self.evaluate_steps(list(queries))
        self.queries += int(passed.numel())
        return passed

    def evaluate_sets(self, sets: Tensor) -> SetVerdicts:
        """SetVerdicts on ``(N, n_features)`` set masks (see the class docstring)."""
        if sets.dim() != 2 or sets.shape[1] != self.n_features:
            raise ValueError(f"sets must be (N, {self.n_features}) masks, got {tuple(sets.shape)}")
        if sets.shape[0] == 0:
            empty = torch.zeros(0, dtype=torch.bool)
            return SetVerdicts(empty, torch.zeros(0, dtype=torch.float64))
        verdicts = self.evaluate_masks(sets)
        self.queries += int(sets.shape[0])
        return verdicts

    @property
    def remaining(self) -> Optional[int]:
        """Queries left under ``options.max_queries`` (None: no budget)."""
        budget = self.options.max_queries
        return None if budget is None else max(budget - self.queries, 0)

    def run_within_budget(self, search: "ResponsibilitySearch") -> "SearchResult":
        r"""Run another search on what is left of this context's budget, and count what it spent.

        For a search made of searches (one after another, or a probe then a refinement): ``search``
        gets a copy of this context whose ``max_queries`` is :attr:`remaining` and whose count starts
        at 0; the queries its result reports are added to this context's count. (The result's
        count, not the copy's: a search may itself query through a further copy.)

        Args:
            search (ResponsibilitySearch): Any object with ``run(context) -> SearchResult``.

        Returns:
            SearchResult: What ``search`` returned.
        """
        options = replace(self.options, max_queries=self.remaining)
        result = search.run(replace(self, options=options, queries=0))
        self.queries += result.queries
        return result


@dataclass
class SearchResult:
    r"""What a responsibility search returns.

    Attributes:
        responsibility (Tensor): ``(n_features,)`` non-negative, larger is more responsible; the
                    ranking orders features by it (ties by spectral energy).
        queries (int): Model queries the search spent.
        stopped_by (str): Why it stopped, e.g. ``"searches"``, ``"converged"``, ``"max_queries"``.
        details (dict): Anything else worth reporting (e.g. the order an adaptive search chose).
        sets (Tensor, optional): ``(M, n_features)`` bool, sets the search saw pass (each verified
                    by a query during the search), smallest first; None when it kept none. With
                    ``explain(shrink=True)`` in ``"sufficient"`` mode, a set smaller than the
                    sufficient prefix of the ranking is where shrinking starts.
    """

    responsibility: Tensor
    queries: int
    stopped_by: str
    details: Dict[str, Any] = field(default_factory=dict)
    sets: Optional[Tensor] = None


@runtime_checkable
class ResponsibilitySearch(Protocol):
    r"""A responsibility search: ``run(context) -> SearchResult`` for one example.

    Implementations must draw randomness only from ``context.generator`` (so a seed gives the same
    result and a batch explains as each example alone), stay within ``context.options.max_queries``
    and return non-negative responsibility of shape ``(context.n_features,)``.
    """

    def run(self, context: SearchContext) -> SearchResult:
        ...  # pragma: no cover
