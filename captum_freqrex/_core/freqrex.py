"""FreqReX: causal responsibility of frequency features, as a Captum perturbation attribution.

The composition root. Per example: anchors (the input and the baseline alone) -> search
(responsibility) -> ranking -> certified sets -> :class:`Explanation`. Each arrow is a function of
its own stage (``certify/trust.py``, ``search/evaluation.py``, ``certify/ranking.py``,
``certify/certify.py``); this module only wires them, with one :class:`FreqReXOptions` per call.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Tuple, Union

import torch
from captum.attr import PerturbationAttribution
from captum.log import log_usage
from torch import Tensor

from captum_freqrex._core.certify.certify import CertifiedSets, certify_sets
from captum_freqrex._core.certify.manipulation import FoundManipulation, find_manipulation
from captum_freqrex._core.certify.multiple import DisjointSearch, DisjointSets, disjoint_sets, given_scorer, search_scorer
from captum_freqrex._core.certify.ranking import DEFAULT_RTOL, rank_features
from captum_freqrex._core.certify.trust import Anchors, issue_warnings, probe_anchors, removal_warnings
from captum_freqrex._explanation import Explanation, class_confidences, settings_record
from captum_freqrex._core.model.decision import Decision, DecisionLike
from captum_freqrex._core.model.example import ExampleQueries
from captum_freqrex._core.model.memory import estimate_memory
from captum_freqrex._core.model.oracle import (
    Oracle, check_forward_func, declared_class_names, declared_sample_rate, rows_per_call,
)
from captum_freqrex._core.model.outputs import OutputSelector, check_output_selector
from captum_freqrex._core.model.targets import TargetLike, targets_per_example
from captum_freqrex._core.options import FreqReXOptions
from captum_freqrex._core.records import QueryStats
from captum_freqrex._core.search import BUILT_IN_SEARCHES, SearchLike, resolve_search
from captum_freqrex._core.search.auto import AutoSearch
from captum_freqrex._core.search.band_screening import BandScreening
from captum_freqrex._core.search.base import RefinementOptions, SearchResult
from captum_freqrex._core.search.evaluation import run_search, search_context
from captum_freqrex._core.spectral.domains import SpectralDomain, check_domain
from captum_freqrex._core.spectral.rows import RowBuffer
from captum_freqrex._core.spectral.space import FeatureSpace, check_synthesis
from captum_freqrex._utils.progress import progress
from captum_freqrex._utils.validation import TensorOrTuple, format_baselines, format_waveforms

__all__ = ["FreqReX", "FreqReXOptions"]


@dataclass
class _Call:
    """Everything one attribution call shares across its examples."""

    space: FeatureSpace
    oracle: Oracle  # the one caller of the model: batches, checks, decision, counts, reused rows
    waves: Tuple[Tensor, ...]
    is_tuple: bool
    targets: List[Any]
    options: FreqReXOptions
    refinement: RefinementOptions  # the search knobs, validated once
    seed: int

    @property
    def decision(self) -> Optional[Decision]:
        """The decision, fixed from the first example's own output (None before)."""
        return self.oracle.decision

    def queries(self, example: int) -> ExampleQueries:
        """The view of one example that every stage queries the model through."""
        return ExampleQueries(self.oracle, self.space, self.waves, example)


class FreqReX(PerturbationAttribution):
    r"""Frequency-domain causal responsibility explanations (FreqReX) of audio classifiers.

    FreqReX is black-box: it only calls the model on *mutants*, waveforms whose spectrum keeps some
    frequency features and sets the others to the baseline's (removes them, by default). It ranks
    the features by their degree of causal responsibility for the decision (see
    :mod:`captum_freqrex._core.search.partition` for the refinement), and :meth:`explain` extracts
    certified sufficient, sufficient-and-necessary and complete sets from that ranking (the last two
    searched for with necessary-mode evidence where the ranking's prefixes are poor, see
    :mod:`captum_freqrex._core.certify.joint`).

    Args:
        forward_func (Callable): The model: any callable mapping waveforms ``(B, T)`` or
                    ``(B, C, T)`` (plus ``additional_forward_args``) to scores ``(B, K)`` or ``(B,)``
                    (a zoo model: ``zoo.load(name).model``; anything not callable is refused here).
        domain (SpectralDomain, optional): The feature transform: :class:`RfftDomain` (default) or
                    :class:`StftDomain` for time-frequency cells.
        decision (str, Decision or Callable, optional): When a mutant keeps the decision. None picks
                    the argmax for multi-class outputs and a 0.5 threshold for single outputs; see
                    :mod:`captum_freqrex._core.model.decision`. Default: None
        search (search object or str, optional): How responsibility is searched: any object with a
                    ``run(context) -> SearchResult`` method (see :mod:`captum_freqrex._core.search.base`),
                    or the name of a built-in: ``"auto"`` (the default: chooses per example, see
                    :mod:`captum_freqrex._core.search.auto`: band screening for ``mode="necessary"``;
                    otherwise the refinement over contiguous bands, preferring loud sets, and other
                    feature orders when the bands leave the set scattered), ``"refinement"`` (the
                    partition refinement over contiguous bands), ``"interleaved"`` and ``"energy"``
                    (the refinement along another feature order, for causes scattered across the
                    spectrum), ``"adaptive"`` (probes the three orders at the root, refines along
                    the one that narrows the set most) and ``"band_screening"`` (hierarchical
                    screening of removals, for ``mode="necessary"``). Default: None (``"auto"``)
        output (None, str, int or Callable, optional): Where the scores are in what the model
                    returns. None takes a tensor as is and unwraps the usual containers: the
                    ``.logits`` of a Hugging Face ``ModelOutput`` (or of any object with a tensor
                    ``logits`` attribute), a dict's ``"logits"`` entry, a tuple's first element;
                    a dict without ``"logits"`` is refused with its keys. A str names a key or
                    attribute (``output="logits"``), an int an element of a tuple (``output=0``),
                    and a function picks the scores itself (``output=lambda out: out["scores"]``).
                    See :func:`~captum_freqrex._core.model.outputs.select_output`. Default: None
        synthesis (str, optional): How mutants are synthesised (see :class:`FeatureSpace`):
                    ``"auto"`` with the CPU speed-ups (few-bin matrix products on long clips,
                    refinement mutants as sums of part waveforms), ``"reference"`` with the plain
                    ``irfft(m * X + (1 - m) * Xb)`` for every mutant, slower, to check a result
                    against the formula. Both give the same waveforms up to float rounding.
                    Default: ``"auto"``

    Attributes:
        last_stats (QueryStats): Queries, forward calls, model and total time of the last call.
        last_search (list of SearchResult): Per example of the last call, what the search returned
                    (its queries, why it stopped, and details such as the order it chose).
    """

    def __init__(
        self,
        forward_func: Callable,
        domain: Optional[SpectralDomain] = None,
        decision: DecisionLike = None,
        search: SearchLike = None,
        *,
        output: OutputSelector = None,
        synthesis: str = "auto",
    ) -> None:
        check_forward_func(forward_func)  # now, not at the first explain
        PerturbationAttribution.__init__(self, forward_func)
        self.output = check_output_selector(output)
        self.synthesis = check_synthesis(synthesis)
        self.domain = check_domain(domain)
        self.decision = decision
        self.search = resolve_search(search)
        self.last_stats = QueryStats()
        self.last_search: List[SearchResult] = []

    def __repr__(self) -> str:
        model = getattr(self.forward_func, "__name__", None) or type(self.forward_func).__name__
        domain = "RfftDomain()" if self.domain is None else repr(self.domain)
        return (
            f"FreqReX(model={model}, domain={domain}, decision={self.decision!r}, search={self.search!r}, "
            f"output={self.output!r}, synthesis={self.synthesis!r})"
        )

    @classmethod
    def get_name(cls) -> str:
        return "FreqReX"

    @property
    def multiplies_by_inputs(self) -> bool:
        return False

    # ------------------------------------------------------------------ set-up

    def _prepare(
        self, inputs: TensorOrTuple, baselines: Any, target: TargetLike, additional_forward_args: Any,
        feature_mask: Any, generator: Optional[torch.Generator], options: FreqReXOptions,
    ) -> _Call:
        self.last_search = []
        waves, is_tuple = format_waveforms(inputs)
        bases = format_baselines(baselines, waves)
        space = FeatureSpace(waves, bases, feature_mask, self.domain, options.per_channel, synthesis=self.synthesis)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        max_rows = rows_per_call(waves, options.perturbations_per_eval)
        oracle = Oracle(
            self.forward_func, self.output, additional_forward_args, space.batch_size, max_rows,
            budget=options.max_queries, confidence_filter=options.confidence_filter,
            rows=RowBuffer([w[0] for w in waves]),
        )
        refinement = options.refinement()
        seed = options.seed
        if generator is not None:
            seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        estimate_memory(waves, max_rows)
        targets = targets_per_example(target, space.batch_size)
        return _Call(space, oracle, waves, is_tuple, targets, options, refinement, 0 if seed is None else int(seed))

    # ------------------------------------------------------------------ per example

    def _anchors(self, call: _Call, example: int, baseline_waves: Optional[Tuple[Tensor, ...]] = None) -> Anchors:
        if baseline_waves is None:
            baseline_waves = call.space.baseline_waveforms(example)
        decision = call.options.decision if call.options.decision is not None else self.decision
        return probe_anchors(
            call.queries(example), call.targets[example], decision, call.options.mode,
            call.options.confidence_filter, baseline_waves,
        )

    def _responsibility(self, call: _Call, example: int) -> Tuple[Tensor, Anchors, SearchResult]:
        baseline = call.space.baseline_waveforms(example)
        anchors = self._anchors(call, example, baseline)
        removing = call.options.mode == "necessary"
        # "necessary": the root removes everything, i.e. is the baseline. When that keeps the
        # decision the search still runs: a model need not be monotone, and removing part of the
        # spectrum can change a decision that removing all of it keeps.
        root_passes = bool(anchors.baseline.changed) if removing else anchors.original.passes
        # The anchors just asked the empty set: in "sufficient" mode the baseline alone, in
        # "necessary" mode the input with nothing removed.
        empty_passes = None if removing else anchors.baseline.passes
        empty_score = -anchors.original.graded if removing else anchors.baseline.graded
        context = search_context(
            call.queries(example), anchors.target, baseline, root_passes, call.options.mode, call.refinement,
            call.seed, empty_passes=empty_passes, empty_score=empty_score,
        )
        result = run_search(self.search, context)
        self.last_search.append(result)
        return result.responsibility, anchors, result

    def _removal_warnings(self, call: _Call, anchors: Anchors, result: Optional[SearchResult], sets: bool) -> List[str]:
        # What a necessary-mode search found against a baseline that keeps the decision (none:
        # attributions were given). The built-in searches credit a feature only where a removal
        # they queried changed the decision; what a custom search's values mean is not known here.
        found = None
        if result is not None and isinstance(self.search, BUILT_IN_SEARCHES):
            found = bool((result.responsibility > 0).any())
        others = [] if isinstance(self.search, (BandScreening, AutoSearch)) else ["search='band_screening'"]
        return removal_warnings(
            anchors.target, anchors.original, anchors.baseline, call.options.mode, found,
            0 if result is None else result.queries, "" if result is None else result.stopped_by, others, sets,
            prefix_sets=call.options.max_joint_queries == 0,
        )

    # ------------------------------------------------------------------ attribution

    @log_usage()
    def attribute(
        self,
        inputs: TensorOrTuple,
        baselines: Any = None,
        target: TargetLike = None,
        additional_forward_args: Any = None,
        feature_mask: Union[None, Tensor, Tuple[Tensor, ...]] = None,
        n_samples: int = 8,
        perturbations_per_eval: Optional[int] = None,
        show_progress: bool = False,
        *,
        seed: Optional[int] = 0,
        generator: Optional[torch.Generator] = None,
        max_depth: int = 24,
        min_part_size: int = 1,
        n_pieces: int = 4,
        confidence_filter: float = 0.0,
        max_queries: Optional[int] = 1000,
        convergence_top_k: Optional[int] = 10,
        per_channel: bool = False,
        decision: DecisionLike = None,
        mode: str = "sufficient",
        options: Optional[FreqReXOptions] = None,
    ) -> TensorOrTuple:
        r"""Responsibility of each frequency feature for the model's decision.

        Args:
            inputs (Tensor or tuple of Tensor): Waveforms ``(B, T)`` or ``(B, C, T)``, batch first,
                        float32 or float64 (the transforms take no half precision); tensors that
                        require grad are used detached.
            baselines (scalar, Tensor or tuple, optional): What removed frequencies become: the
                        baseline waveform's spectrum. None (zeros) removes them; a number is a
                        constant waveform; a tensor is a waveform broadcastable to the input
                        (``(T,)``, ``(1, ...)`` or one per example). Default: None
            target (int, tuple, Tensor or list, optional): The decision to explain per example, as
                        in Captum. None explains the model's own decision on the unmasked input.
                        Default: None
            additional_forward_args (Any, optional): Passed to the model after the waveforms;
                        tensors with a batch dimension are sliced per example. Default: None
            feature_mask (Tensor or tuple of Tensor, optional): Integer ids grouping frequency bins
                        into features, broadcastable to the feature grid (``(F,)``, ``(1, F)``, or
                        ``(C, F)`` with ``per_channel=True``; ``(F_stft, frames)`` for the STFT
                        domain). Features are refined in id order. Default: one feature per bin.
            n_samples (int, optional): Most independent refinement searches: a cap, not a quota
                        (the searches stop once the answer is settled, or at the budget). Default: 8
            perturbations_per_eval (int, optional): Most waveforms per model call (mutants, and
                        the input with its baseline); 1 for a model that takes one waveform at a
                        time. Default: chosen from the available memory (at most 128).
            show_progress (bool, optional): Report progress over the examples on stderr (a tqdm
                        bar, a widget in a notebook with ipywidgets).
                        Default: False
            seed (int, optional): Seed of the random cuts. Every example uses the same seed, so an
                        example's result does not depend on the batch around it. Default: 0
            generator (torch.Generator, optional): Draws the seed instead of ``seed``. Default: None
            max_depth (int, optional): Most refinement steps per search. Default: 24
            min_part_size (int, optional): Smallest piece, in features, the refinement cuts.
                        Default: 1
            n_pieces (int, optional): Sub-pieces per cut (at most ``2**n_pieces - 1`` mutants per
                        step, ``n_pieces + 1`` where one sub-piece settles it).
                        Default: 4
            confidence_filter (float, optional): A mutant only keeps the decision if its confidence
                        in the target is at least this. Default: 0.0
            max_queries (int, optional): Query budget for the responsibility of one example; None
                        for no budget. A refinement step is charged all its ``2**n_pieces - 1``
                        mutants, also where its first ``n_pieces + 1`` settle it and the rest are
                        not asked (the queries reported are the ones asked). Default: 1000
            convergence_top_k (int, optional): Early stopping: None runs every search the budget
                        allows (and the default search asks no loud peaks before them); any
                        number stops them once the answer is settled, "minimal" (a search, or
                        the default's loud-peak step, found a one-feature passing set: nothing
                        smaller passes), "small" (a passing set of at most four) or "converged"
                        (a search found no smaller passing set than those before it; see
                        :mod:`captum_freqrex._core.search.partition`). The number itself is no
                        longer read (it was the width of an earlier rule that compared the top
                        features between waves of searches, and never stopped on clips with many
                        equivalent one-bin causes); it is kept so existing calls run. Default: 10
            per_channel (bool, optional): Separate features per channel for ``(B, C, T)`` inputs.
                        Default: False (each frequency is one feature across channels)
            decision (str, Decision or Callable, optional): Overrides the constructor's decision.
            mode (str, optional): ``"sufficient"``: mutants keep subsets of the features against
                        the baseline, and responsibility goes to what keeps the decision (the
                        causes of the decision). ``"necessary"``: mutants remove subsets of the
                        features from the input, and responsibility goes to what changes the
                        decision when removed: the fewest frequencies that fool the model. When
                        the baseline alone (every frequency removed) keeps the decision, the search
                        still runs, since removing part of the spectrum may change a decision that
                        removing all of it keeps (a model need not be monotone); responsibility is
                        0 only when no removal it tried within ``max_queries`` changed the decision,
                        and a warning says which case it was. Default: ``"sufficient"``
            options (FreqReXOptions, optional): Every option above as one object, validated once
                        (the keywords must then keep their defaults); ``explain`` takes the same
                        object. Default: None

        Returns:
            Tensor or tuple of Tensor: Responsibility per frequency bin, shaped ``(B, *feature_grid)``
            with ``feature_grid`` = ``(T // 2 + 1,)`` for rfft features (``(C, T // 2 + 1)`` with
            ``per_channel=True``) and ``(n_fft // 2 + 1, frames)`` for the STFT domain. Bins of one
            feature share its value. This is indexed by frequency, not by time sample.
        """
        start = time.perf_counter()
        options = _call_options(
            options, n_samples=n_samples, perturbations_per_eval=perturbations_per_eval, seed=seed,
            max_depth=max_depth, min_part_size=min_part_size, n_pieces=n_pieces, confidence_filter=confidence_filter,
            max_queries=max_queries, convergence_top_k=convergence_top_k, per_channel=per_channel, decision=decision,
            mode=mode,
        )
        call = self._prepare(inputs, baselines, target, additional_forward_args, feature_mask, generator, options)
        rows = []
        batch = range(call.space.batch_size)
        for example in progress(batch, len(batch), "FreqReX", show_progress):
            values, anchors, result = self._responsibility(call, example)
            messages = anchors.warnings + self._removal_warnings(call, anchors, result, sets=False)
            issue_warnings(messages, example, call.space.batch_size, stacklevel=4)
            rows.append(values)
        values = torch.stack(rows).to(device=call.space.device, dtype=call.waves[0].dtype)
        call.oracle.stats.total_seconds = time.perf_counter() - start
        self.last_stats = call.oracle.stats
        grids = call.space.to_grid(values)
        return grids if call.is_tuple else grids[0]

    # ------------------------------------------------------------------ explanation

    def explain(
        self,
        inputs: TensorOrTuple,
        baselines: Any = None,
        target: TargetLike = None,
        additional_forward_args: Any = None,
        feature_mask: Union[None, Tensor, Tuple[Tensor, ...]] = None,
        n_samples: int = 8,
        perturbations_per_eval: Optional[int] = None,
        show_progress: bool = False,
        *,
        seed: Optional[int] = 0,
        generator: Optional[torch.Generator] = None,
        max_depth: int = 24,
        min_part_size: int = 1,
        n_pieces: int = 4,
        confidence_filter: float = 0.0,
        max_queries: Optional[int] = 1000,
        convergence_top_k: Optional[int] = 10,
        per_channel: bool = False,
        decision: DecisionLike = None,
        mode: str = "sufficient",
        complete_tolerance: float = 0.05,
        max_extraction_queries: int = 64,
        attributions: Optional[TensorOrTuple] = None,
        rank_rtol: float = DEFAULT_RTOL,
        shrink: bool = True,
        max_shrink_queries: int = 64,
        max_joint_queries: int = 320,
        n_explanations: int = 1,
        options: Optional[FreqReXOptions] = None,
    ) -> List[Explanation]:
        r"""The full causal explanation of each example: responsibility and certified sets.

        Takes every argument of :meth:`attribute`, plus:

        Args:
            complete_tolerance (float, optional): The complete set must reach the original
                        confidence minus this. Default: 0.05
            max_extraction_queries (int, optional): Query budget for extracting and certifying the
                        three sets of one example. Default: 64
            attributions (Tensor or tuple, optional): Per-bin attributions ``(B, *feature_grid)`` of
                        another method (e.g. IntegratedGradients through :class:`FrequencyForward`).
                        When given, no responsibility is computed: the sets are extracted and
                        certified from the ranking of these attributions (a feature scores the mean
                        of its bins), so any method's sets are checked the same way. They must be
                        finite. Default: None
            rank_rtol (float, optional): Scores within this relative width of each other share a
                        tier of the ranking, inside which the feature carrying more of the signal's
                        energy comes first (:func:`~captum_freqrex._core.certify.ranking.rank_features`);
                        ``0`` breaks exact ties only. Default: 0.1
            shrink (bool, optional): Shrink the sufficient set after extraction: start from the
                        smallest set known to keep the decision (the sufficient prefix of the
                        ranking, or a smaller set the search itself saw pass in ``"sufficient"``
                        mode) and drop features by batched deletions while it stays sufficient (see
                        :mod:`captum_freqrex._core.search.shrink`). The result is certified like every
                        set; ``sufficient.certificate.shrink`` reports the sizes before and after
                        and how far from 1-minimal the set is. On by default: the ranking's prefix
                        is often larger than the passing set the search saw, and the shrink costs at
                        most ``max_shrink_queries``. Default: True
            max_shrink_queries (int, optional): Query budget of the shrink of one example, on top
                        of ``max_extraction_queries`` (its queries are counted in
                        ``extraction_queries``). Default: 64
            max_joint_queries (int, optional): Query budget of the search for the
                        sufficient-and-necessary and complete sets of one example, on top of the
                        others (counted in ``extraction_queries``). The ranking's prefix extraction
                        then searches the sufficient set only; the sufficient set is kept where its
                        removal already changes the decision, and otherwise coarse bands are removed,
                        a necessary-mode band screening (only where a band of at most 1/8 of the
                        features flipped) finds the fewest features whose removal changes it, and the
                        smallest candidate that both keeps the decision alone and changes it when
                        removed (a tie is no change) - the sufficient set plus those features, a
                        flipping band, a removal of runs of the loudest features where no band
                        candidate holds, or the ranking's shortest prefix whose removal flips - is
                        shrunk; the complete set is that set where it reaches the input's confidence
                        alone, or is grown from it along the ranking and shrunk (see
                        :mod:`captum_freqrex._core.certify.joint`; each stage stops once its answer is
                        settled, so the budget is a cap). The sets are certified like every set; their
                        ``certificate.note`` says how they were found and ``certificate.shrink`` their
                        sizes. 0 keeps the three prefixes of the ranking. Default: 320
            n_explanations (int, optional): Return up to this many pairwise-disjoint certified
                        sufficient sets (the ReX family's multiple explanations): the first is
                        ``sufficient``, the others ``alternatives``, each found by the same search
                        run over the features no earlier set holds, extracted, shrunk (with
                        ``shrink``) and certified like the first. The search stops early, saying
                        why in ``alternatives_report.stopped``, when keeping every feature outside
                        the earlier sets no longer keeps the decision. Each further set spends at
                        most ``1 + max_queries + max_extraction_queries`` queries (plus
                        ``max_shrink_queries`` with ``shrink``); see
                        :mod:`captum_freqrex._core.certify.multiple`. Needs ``mode="sufficient"``.
                        Default: 1 (the first set only)

            options (FreqReXOptions, optional): Every option above as one object (the keywords
                        must then keep their defaults). Default: None

        Returns:
            list of Explanation: One per example, in batch order.
        """
        call_start = time.perf_counter()
        options = _call_options(
            options, n_samples=n_samples, perturbations_per_eval=perturbations_per_eval, seed=seed,
            max_depth=max_depth, min_part_size=min_part_size, n_pieces=n_pieces, confidence_filter=confidence_filter,
            max_queries=max_queries, convergence_top_k=convergence_top_k, per_channel=per_channel, decision=decision,
            mode=mode, complete_tolerance=complete_tolerance, max_extraction_queries=max_extraction_queries,
            rank_rtol=rank_rtol, shrink=shrink, max_shrink_queries=max_shrink_queries, n_explanations=n_explanations,
            max_joint_queries=max_joint_queries,
        )
        call = self._prepare(inputs, baselines, target, additional_forward_args, feature_mask, generator, options)
        scores = None
        if attributions is not None:
            grid = attributions if isinstance(attributions, tuple) else (attributions,)
            scores = call.space.from_grid(grid).cpu()
        recorded = dict(generator=generator is not None, baselines=baselines, feature_mask=feature_mask,
                        attributions=attributions is not None)
        total = QueryStats()
        explanations = []
        batch = range(call.space.batch_size)
        for example in progress(batch, len(batch), "FreqReX", show_progress):
            explanation = self._explain_example(call, example, scores, recorded)
            total = total + explanation.stats
            explanations.append(explanation)
        # The whole call, as for attribute: the examples' own times leave out the set-up (spectra).
        total.total_seconds = time.perf_counter() - call_start
        self.last_stats = total
        return explanations

    def _explain_example(self, call: _Call, example: int, scores: Optional[Tensor], recorded: dict) -> Explanation:
        # anchors -> search (or the given attributions) -> ranking -> certified sets -> Explanation
        start = time.perf_counter()
        before = QueryStats(**vars(call.oracle.stats))
        options, space, candidates, refinement = call.options, call.space, None, None
        if scores is None:
            responsibility, anchors, refinement = self._responsibility(call, example)
            searched, stopped_by = refinement.queries, refinement.stopped_by
            candidates = refinement.sets if options.mode == "sufficient" else None
        else:
            anchors = self._anchors(call, example)
            responsibility, searched, stopped_by = scores[example], 0, "attributions"
        ranking = rank_features(
            responsibility.to(space.device), space.feature_energy(example), rtol=options.rank_rtol,
            energy_order=space.loudest_first(example),
        )
        certified = certify_sets(
            call.queries(example), ranking, anchors, options.complete_tolerance, options.max_extraction_queries,
            options.max_shrink_queries if options.shrink else 0, candidates, call.seed,
            getattr(call.decision, "tie_tolerance", None), options.max_joint_queries,
        )
        more = self._alternatives(call, example, scores, anchors, certified)
        manipulation = FoundManipulation(None, 0)
        if options.mode == "necessary" and anchors.original.passes:
            # Given attributions say nothing of a removal's size: their prefixes are searched from 1.
            details = {} if refinement is None else refinement.details
            manipulation = find_manipulation(call.queries(example), ranking, responsibility, anchors.target,
                                             certified.stable, sized=scores is None, known=certified.sets[1],
                                             answer=details.get("answer"), answer_shrunk=bool(details.get("answer_shrunk")))
        messages = anchors.warnings + self._removal_warnings(call, anchors, refinement, sets=True) + certified.messages
        messages += [] if more is None else more.messages
        issue_warnings(messages, example, space.batch_size)
        after = call.oracle.stats
        stats = QueryStats(
            after.queries - before.queries, after.forward_calls - before.forward_calls,
            after.model_seconds - before.model_seconds, time.perf_counter() - start,
        )
        values = responsibility.to(device=space.device, dtype=call.waves[0].dtype)
        grids = space.to_grid(values)
        sufficient, sufficient_necessary, complete = certified.sets  # one per SET_NAMES
        return Explanation(
            grids if call.is_tuple else grids[0], values, ranking, anchors.target, anchors.original,
            sufficient, sufficient_necessary, complete, stats, searched, certified.queries + manipulation.queries, stopped_by,
            space.select(example), 0, call.is_tuple,  # its own spectra only, not the whole batch's
            baseline=anchors.baseline, warnings=messages, model_stable=certified.stable,
            settings=self._settings(call, example, recorded),
            class_confidences=class_confidences(call.decision, anchors.outputs),
            alternatives=[] if more is None else more.sets, alternatives_report=None if more is None else more.report,
            quiet_sufficient=certified.quiet_sufficient, sample_rate=declared_sample_rate(self.forward_func),
            class_names=declared_class_names(self.forward_func, int(anchors.outputs.shape[-1])),
            manipulation=manipulation.manipulation,
        )

    def _alternatives(
        self, call: _Call, example: int, scores: Optional[Tensor], anchors: Anchors, certified: CertifiedSets,
    ) -> Optional[DisjointSets]:
        # explain(n_explanations=k): further sufficient sets, disjoint from the first (None for k=1).
        options = call.options
        if options.n_explanations == 1:
            return None
        if scores is None:
            baseline = call.space.baseline_waveforms(example)
            scorer = search_scorer(self.search, lambda: search_context(
                call.queries(example), anchors.target, baseline, True, "sufficient", options.refinement(), call.seed,
            ), options.refinement)
        else:
            scorer = given_scorer(scores[example])
        how = DisjointSearch(
            scorer, options.max_extraction_queries, options.max_shrink_queries if options.shrink else 0,
            options.rank_rtol, call.seed, getattr(call.decision, "tie_tolerance", None),
        )
        return disjoint_sets(call.queries(example), anchors, certified.sets[0], options.n_explanations, how, certified.stable)

    def _settings(self, call: _Call, example: int, recorded: dict) -> dict:
        # The call's options as the saved explanation records them (same keys, same order as ever).
        o = call.options
        return settings_record(
            seed=call.seed, generator=recorded["generator"], target=call.targets[example],
            baselines=recorded["baselines"], feature_mask=recorded["feature_mask"], n_samples=o.n_samples,
            perturbations_per_eval=o.perturbations_per_eval, max_depth=o.max_depth,
            min_part_size=o.min_part_size, n_pieces=o.n_pieces, confidence_filter=o.confidence_filter,
            max_queries=o.max_queries, convergence_top_k=o.convergence_top_k, per_channel=o.per_channel,
            mode=o.mode, complete_tolerance=o.complete_tolerance,
            max_extraction_queries=o.max_extraction_queries, attributions=recorded["attributions"],
            rank_rtol=o.rank_rtol, shrink=o.shrink, max_shrink_queries=o.max_shrink_queries,
            max_joint_queries=o.max_joint_queries, domain=call.space.domain, decision=call.decision, search=self.search,
            synthesis=self.synthesis, n_explanations=o.n_explanations,
        )


def _call_options(options: Optional[FreqReXOptions], **keywords: Any) -> FreqReXOptions:
    # One FreqReXOptions per call: from the keywords, or the given object when no keyword is changed.
    if options is None:
        return FreqReXOptions(**keywords)
    if not isinstance(options, FreqReXOptions):
        raise TypeError(f"options must be a FreqReXOptions, got {type(options).__name__}")
    defaults = FreqReXOptions()
    changed = sorted(name for name, value in keywords.items() if value is not getattr(defaults, name)
                     and value != getattr(defaults, name))
    if changed:
        raise TypeError(
            f"pass the options either as keywords or as options=FreqReXOptions(...), not both (got options= and "
            f"{', '.join(changed)}): set them on the options object, e.g. options.replace({changed[0]}=...)"
        )
    return options
