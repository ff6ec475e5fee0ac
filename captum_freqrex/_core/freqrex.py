"""FreqReX: causal responsibility of frequency features, as a Captum perturbation attribution."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, List, Optional, Sequence, Tuple, Union

import torch
from captum.attr import PerturbationAttribution
from captum.log import log_usage
from torch import Tensor

from captum_freqrex._core.search.adaptive import AdaptiveRefinement
from captum_freqrex._core.search.band_screening import BandScreening
from captum_freqrex._core.model.decision import Decision, DecisionLike
from captum_freqrex._core.spectral.domains import SpectralDomain
from captum_freqrex._explanation import CausalSet, Explanation, class_confidences, settings_record
from captum_freqrex._core.certify.prefix import PrefixSearch, ProbeResult, SetCertificate, prefix_masks
from captum_freqrex._core.spectral.space import FeatureSpace, check_synthesis
from captum_freqrex._core.model.oracle import Oracle, rows_per_call
from captum_freqrex._core.model.querier import OutputSelector, QueryStats, RowBuffer, check_output_selector, estimate_memory
from captum_freqrex._core.certify.ranking import DEFAULT_RTOL, rank_features
from captum_freqrex._core.search.partition import PartitionRefinement, RefinementOptions, StepQuery
from captum_freqrex._core.search.base import SearchContext, SearchLike, SearchResult, Verdicts, resolve_search
from captum_freqrex._core.certify.shrink import ShrinkReport, shrink_set
from captum_freqrex._core.spectral.synthesis import StepSynthesizer
from captum_freqrex._core.model.targets import TargetLike, flat_target_index, targets_per_example
from captum_freqrex._core.certify.trust import (
    PEAK_AMPLITUDE_HINT,
    STABILITY_TOLERANCE,
    Anchors,
    anchor_warnings,
    issue_warnings,
    loudness,
    removal_warnings,
    set_note,
)
from captum_freqrex._utils.progress import progress
from captum_freqrex._utils.validation import TensorOrTuple, as_int, format_baselines, format_waveforms

#: What the refinement searches for: features whose *keeping* (against the baseline) keeps the
#: decision, or features whose *removal* (from the input) changes it.
MODES = ("sufficient", "necessary")


@dataclass
class _Run:
    """Everything an attribution call shares across examples."""

    space: FeatureSpace
    oracle: Oracle  # the one caller of the model: batches, checks, decision, counts, reused rows
    waves: Tuple[Tensor, ...]
    is_tuple: bool
    targets: List[Any]
    decision_spec: DecisionLike
    options: RefinementOptions
    confidence_filter: float
    seed: int
    mode: str = "sufficient"

    @property
    def decision(self) -> Optional[Decision]:
        """The decision, fixed from the first example's own output (None before)."""
        return self.oracle.decision

    @property
    def output_shape(self) -> Optional[Tuple[int, ...]]:
        """Shape of one waveform's scores (``(1,)`` for one score), None before the first call."""
        shape = self.oracle.output_shape
        return None if shape is None else shape or (1,)

    @property
    def rows(self) -> RowBuffer:
        """Model-input rows reused by every query of the call."""
        assert self.oracle.rows is not None
        return self.oracle.rows


#: Searches whose responsibility is above 0 only where a removal (or keep) they queried passed.
BUILT_IN_SEARCHES = (PartitionRefinement, AdaptiveRefinement, BandScreening)


#: Largest seed a torch.Generator takes (its seed is a signed 64-bit integer here).
MAX_SEED = 2**63 - 1


class FreqReX(PerturbationAttribution):
    r"""Frequency-domain causal responsibility explanations (FreqReX) of audio classifiers.

    FreqReX is black-box: it only calls the model on *mutants*, waveforms whose spectrum keeps some
    frequency features and sets the others to the baseline's (removes them, by default). It ranks
    the features by their degree of causal responsibility for the decision (see
    :mod:`captum_freqrex._core.search.partition` for the refinement), and :meth:`explain` extracts
    certified sufficient, sufficient-and-necessary and complete sets from that ranking.

    Args:
        forward_func (Callable): The model: any callable mapping waveforms ``(B, T)`` or
                    ``(B, C, T)`` (plus ``additional_forward_args``) to scores ``(B, K)`` or ``(B,)``.
        domain (SpectralDomain, optional): The feature transform: :class:`RfftDomain` (default) or
                    :class:`StftDomain` for time-frequency cells.
        decision (str, Decision or Callable, optional): When a mutant keeps the decision. None picks
                    the argmax for multi-class outputs and a 0.5 threshold for single outputs; see
                    :mod:`captum_freqrex._core.model.decision`. Default: None
        search (search object or str, optional): How responsibility is searched: any object with a
                    ``run(context) -> SearchResult`` method (see :mod:`captum_freqrex._core.search.base`),
                    or the name of a built-in: ``"refinement"`` (the default partition refinement
                    over contiguous bands), ``"interleaved"`` and ``"energy"`` (the refinement
                    along another feature order, for causes scattered across the spectrum),
                    ``"adaptive"`` (probes the three orders at the root, refines along the one
                    that narrows the set most) and ``"band_screening"`` (hierarchical screening
                    of removals, for ``mode="necessary"``). Default: None (the refinement)
        output (None, str, int or Callable, optional): Where the scores are in what the model
                    returns. None takes a tensor as is and unwraps the usual containers: the
                    ``.logits`` of a Hugging Face ``ModelOutput`` (or of any object with a tensor
                    ``logits`` attribute), a dict's ``"logits"`` entry, a tuple's first element;
                    a dict without ``"logits"`` is refused with its keys. A str names a key or
                    attribute (``output="logits"``), an int an element of a tuple (``output=0``),
                    and a function picks the scores itself (``output=lambda out: out["scores"]``).
                    See :func:`~captum_freqrex._core.model.querier.select_output`. Default: None
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
        PerturbationAttribution.__init__(self, forward_func)
        self.output = check_output_selector(output)
        self.synthesis = check_synthesis(synthesis)
        self.domain = domain
        self.decision = decision
        self.search = resolve_search(search)
        self.last_stats = QueryStats()
        self.last_search: List[SearchResult] = []

    @classmethod
    def get_name(cls) -> str:
        return "FreqReX"

    @property
    def multiplies_by_inputs(self) -> bool:
        return False

    # ------------------------------------------------------------------ set-up

    def _prepare(
        self,
        inputs: TensorOrTuple,
        baselines: Any,
        target: TargetLike,
        additional_forward_args: Any,
        feature_mask: Any,
        n_samples: int,
        perturbations_per_eval: Optional[int],
        seed: Optional[int],
        generator: Optional[torch.Generator],
        max_depth: int,
        min_part_size: int,
        n_pieces: int,
        confidence_filter: float,
        max_queries: Optional[int],
        convergence_top_k: Optional[int],
        per_channel: bool,
        decision: DecisionLike,
        mode: str = "sufficient",
    ) -> _Run:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(map(repr, MODES))}, got {mode!r}")
        self.last_search = []
        waves, is_tuple = format_waveforms(inputs)
        bases = format_baselines(baselines, waves)
        space = FeatureSpace(waves, bases, feature_mask, self.domain, per_channel, synthesis=self.synthesis)
        if perturbations_per_eval is not None:
            perturbations_per_eval = as_int(perturbations_per_eval, "perturbations_per_eval", minimum=1)
        if seed is not None:
            seed = as_int(seed, "seed", minimum=0, maximum=MAX_SEED)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        if isinstance(confidence_filter, bool) or not isinstance(confidence_filter, (int, float)):
            raise TypeError(f"confidence_filter must be a number in [0, 1), got {confidence_filter!r}")
        if not 0.0 <= confidence_filter < 1.0:
            raise ValueError(f"confidence_filter must be in [0, 1), got {confidence_filter}")
        max_rows = rows_per_call(waves, perturbations_per_eval)
        oracle = Oracle(
            self.forward_func, self.output, additional_forward_args, space.batch_size, max_rows,
            budget=max_queries, confidence_filter=confidence_filter, rows=RowBuffer([w[0] for w in waves]),
        )
        options = RefinementOptions(
            n_samples, max_depth, min_part_size, n_pieces, max_queries, convergence_top_k
        )
        options.validate()
        if generator is not None:
            seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        estimate_memory(waves, max_rows)
        return _Run(
            space,
            oracle,
            waves,
            is_tuple,
            targets_per_example(target, space.batch_size),
            decision if decision is not None else self.decision,
            options,
            confidence_filter,
            0 if seed is None else int(seed),
            mode,
        )

    def _target_index(self, run: _Run, target: Any, outputs: Tensor) -> int:
        assert run.decision is not None and run.output_shape is not None
        if target is None:
            return int(run.decision.classes(outputs)[0])
        return flat_target_index(target, run.output_shape, run.decision.num_classes(outputs))

    def _anchors(self, run: _Run, example: int, baseline_waves: Optional[Tuple[Tensor, ...]] = None) -> Anchors:
        # The unmasked input and the baseline alone (its waveforms, when the caller has them),
        # in one model call. The input goes in as a copy: a model that edits its input in place
        # must not edit the caller's tensor.
        if baseline_waves is None:
            baseline_waves = run.space.baseline_waveforms(example)
        rows = run.rows.take(2)
        for row, wave, base in zip(rows, run.waves, baseline_waves):
            row[0].copy_(wave[example])
            row[1].copy_(base)
        try:
            outputs = run.oracle.scores(rows, example)
        except ValueError as error:
            peak = max(float(w[example].abs().max()) for w in run.waves)
            if "NaN or Inf" in str(error) and peak > PEAK_AMPLITUDE_HINT:
                raise ValueError(
                    f"the model returned NaN or Inf on the input, whose peak amplitude {peak:.3g} is far "
                    "outside the range audio models expect (about [-1, 1], or [-32768, 32767] for "
                    "16-bit integers): normalise the waveform (e.g. x / x.abs().max())"
                ) from None
            raise
        # Logits or probabilities are decided from this example's own output, once: every mutant
        # of the example is then read the same way, and a batch explains as each example alone.
        run.oracle.decide(run.decision_spec, outputs[:1])
        target = self._target_index(run, run.targets[example], outputs[:1])
        original, baseline = self._probe(run, outputs, target)
        return Anchors(target, original, baseline, anchor_warnings(target, original, baseline, run.mode, run.confidence_filter), outputs[0])

    def _probe(self, run: _Run, outputs: Tensor, target: int) -> List[ProbeResult]:
        return run.oracle.verdicts(outputs, target).probes()

    def _prefix_outputs(
        self, run: _Run, example: int, ranking: Tensor, keep_sizes: List[int], remove_sizes: List[int]
    ) -> Tensor:
        # Outputs for mutants keeping the top-k features (keep_sizes), then for mutants removing
        # them (remove_sizes). Masks are built per model call: on long clips a mask per size
        # would cost as much memory as the mutants.
        sizes = [(k, False) for k in keep_sizes] + [(k, True) for k in remove_sizes]

        def keeps(lo: int, hi: int) -> Tensor:
            chunk = sizes[lo:hi]
            masks = prefix_masks(ranking, [k for k, _ in chunk])
            removes = torch.tensor([r for _, r in chunk], device=masks.device)
            masks[removes] = 1.0 - masks[removes]
            return masks

        return run.oracle.keep_scores(run.space, example, len(sizes), keeps)

    # ------------------------------------------------------------------ responsibility

    def _responsibility(self, run: _Run, example: int) -> Tuple[Tensor, Anchors, SearchResult]:
        space = run.space
        baseline = space.baseline_waveforms(example)
        anchors = self._anchors(run, example, baseline)
        target, original = anchors.target, anchors.original
        removing = run.mode == "necessary"
        # Mutants start from the baseline and add what they keep ("sufficient"), or start from
        # the input and subtract what they remove ("necessary").
        start = tuple(w[example] for w in run.waves) if removing else baseline
        synthesizer = StepSynthesizer(space, example, start, -1.0 if removing else 1.0)

        def verdicts(outputs: Tensor) -> Verdicts:
            # "necessary": a set passes when removing it changes the decision (a tie does not).
            rows = run.oracle.verdicts(outputs, target)
            graded = rows.graded().cpu()
            return Verdicts((rows.changes if removing else rows.passes).cpu(), -graded if removing else graded)

        def evaluate(queries: Sequence[StepQuery]) -> Tensor:
            batches = synthesizer.batches(queries, run.oracle.max_rows, run.rows)
            return verdicts(run.oracle.scores_of((rows, example) for rows in batches)).passes

        def evaluate_masks(sets: Tensor) -> Verdicts:
            sets = sets.to(space.device, space.dtype)
            return verdicts(self._set_outputs(run, example, 1.0 - sets if removing else sets))

        # "necessary": the root removes everything, i.e. is the baseline. When that keeps the
        # decision the search still runs: a model need not be monotone, and removing part of the
        # spectrum can change a decision that removing all of it keeps.
        root_passes = bool(anchors.baseline.changed) if removing else original.passes
        context = SearchContext(
            evaluate, evaluate_masks, space.n_features, root_passes, run.options,
            torch.Generator().manual_seed(run.seed), space.device, space.feature_energy(example),
            run.mode, run.oracle.max_rows,
        )
        result = self.search.run(context)
        values = result.responsibility.detach().to("cpu", torch.float64).reshape(-1)
        if values.numel() != space.n_features or not bool(torch.isfinite(values).all()) or bool((values < 0).any()):
            raise ValueError(
                f"the search {self.search!r} returned responsibility of shape {tuple(result.responsibility.shape)}; "
                f"it must be {space.n_features} finite non-negative values"
            )
        result.responsibility = values
        self.last_search.append(result)
        return values, anchors, result

    def _removal_warnings(self, run: _Run, anchors: Anchors, result: Optional[SearchResult], sets: bool) -> List[str]:
        # What a necessary-mode search found against a baseline that keeps the decision (none:
        # attributions were given). The built-in searches credit a feature only where a removal
        # they queried changed the decision; what a custom search's values mean is not known here.
        found = None
        if result is not None and isinstance(self.search, BUILT_IN_SEARCHES):
            found = bool((result.responsibility > 0).any())
        others = [] if isinstance(self.search, BandScreening) else ["search='band_screening'"]
        return removal_warnings(
            anchors.target, anchors.original, anchors.baseline, run.mode, found,
            0 if result is None else result.queries, "" if result is None else result.stopped_by, others, sets,
        )

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
            n_samples (int, optional): Number of independent refinement searches (at most; the
                        search may stop early on convergence or budget). Default: 8
            perturbations_per_eval (int, optional): Most mutants per model call. Default: chosen
                        from the available memory (at most 128).
            show_progress (bool, optional): Report progress over the examples on stderr.
                        Default: False
            seed (int, optional): Seed of the random cuts. Every example uses the same seed, so an
                        example's result does not depend on the batch around it. Default: 0
            generator (torch.Generator, optional): Draws the seed instead of ``seed``. Default: None
            max_depth (int, optional): Most refinement steps per search. Default: 24
            min_part_size (int, optional): Smallest piece, in features, the refinement cuts.
                        Default: 1
            n_pieces (int, optional): Sub-pieces per cut (``2**n_pieces - 1`` mutants per step).
                        Default: 4
            confidence_filter (float, optional): A mutant only keeps the decision if its confidence
                        in the target is at least this. Default: 0.0
            max_queries (int, optional): Query budget for the responsibility of one example; None
                        for no budget. Default: 1000
            convergence_top_k (int, optional): Stop adding searches once the top-k features are
                        unchanged by a wave of searches; None disables. Default: 10
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

        Returns:
            Tensor or tuple of Tensor: Responsibility per frequency bin, shaped ``(B, *feature_grid)``
            with ``feature_grid`` = ``(T // 2 + 1,)`` for rfft features (``(C, T // 2 + 1)`` with
            ``per_channel=True``) and ``(n_fft // 2 + 1, frames)`` for the STFT domain. Bins of one
            feature share its value. This is indexed by frequency, not by time sample.
        """
        start = time.perf_counter()
        run = self._prepare(
            inputs, baselines, target, additional_forward_args, feature_mask, n_samples,
            perturbations_per_eval, seed, generator, max_depth, min_part_size, n_pieces,
            confidence_filter, max_queries, convergence_top_k, per_channel, decision, mode,
        )
        rows = []
        batch = range(run.space.batch_size)
        for example in progress(batch, len(batch), "FreqReX", show_progress):
            values, anchors, result = self._responsibility(run, example)
            messages = anchors.warnings + self._removal_warnings(run, anchors, result, sets=False)
            issue_warnings(messages, example, run.space.batch_size, stacklevel=4)
            rows.append(values)
        values = torch.stack(rows).to(device=run.space.device, dtype=run.waves[0].dtype)
        run.oracle.stats.total_seconds = time.perf_counter() - start
        self.last_stats = run.oracle.stats
        grids = run.space.to_grid(values)
        return grids if run.is_tuple else grids[0]

    # ------------------------------------------------------------------ explanation

    def _set_outputs(self, run: _Run, example: int, keeps: Tensor) -> Tensor:
        # Model outputs (N, K) on the mutants of keep-masks ``(N, n_features)``, a model batch at
        # a time.
        return run.oracle.keep_scores(run.space, example, keeps.shape[0], lambda lo, hi: keeps[lo:hi])

    def _keep_probes(self, run: _Run, example: int, target: int, masks: Tensor) -> List[ProbeResult]:
        # The model on sets ``(N, n_features)`` kept alone.
        return self._probe(run, self._set_outputs(run, example, masks), target)

    def _shrink(
        self, run: _Run, example: int, ranking: Tensor, target: int, k_suff: int, candidates: Optional[Tensor],
        budget: int,
    ) -> Tuple[Tensor, ShrinkReport]:
        # Start from the smallest set known to pass (the prefix, or a smaller set the search saw
        # pass) and shrink it by batched deletions; the caller certifies the result.
        n = run.space.n_features
        position = torch.empty_like(ranking)
        position[ranking] = torch.arange(n, device=ranking.device)
        members, start = ranking[:k_suff], "prefix"
        if candidates is not None and candidates.shape[0]:
            counts = candidates.sum(dim=1)
            smallest = candidates[int(counts.argmin())]
            if 0 < int(counts.min()) < k_suff:
                ids = smallest.to(ranking.device).nonzero().squeeze(1)
                members, start = ids[position[ids].argsort()], "search"

        def test(sets: Sequence[List[int]]) -> List[bool]:
            masks = torch.zeros(len(sets), n, device=run.space.device)
            for row, ids in enumerate(sets):
                masks[row, torch.tensor(ids, dtype=torch.long, device=run.space.device)] = 1.0
            return [r.passes for r in self._keep_probes(run, example, target, masks)]

        generator = torch.Generator().manual_seed(run.seed)
        kept, report = shrink_set(test, members.tolist(), budget, generator, prefix_size=k_suff, start=start)
        mask = torch.zeros(n, device=run.space.device)
        mask[torch.tensor(kept, dtype=torch.long, device=run.space.device)] = 1.0
        return mask, report

    def _extract(
        self, run: _Run, example: int, ranking: Tensor, anchors: Anchors, tolerance: float, budget: int,
        shrink_budget: int = 0, candidates: Optional[Tensor] = None,
    ) -> Tuple[List[Optional[CausalSet]], int, List[str], bool]:
        target, original = anchors.target, anchors.original

        def query(keep_sizes: List[int], remove_sizes: List[int]) -> Tuple[List[ProbeResult], List[ProbeResult]]:
            if not keep_sizes and not remove_sizes:
                return [], []
            outputs = self._prefix_outputs(run, example, ranking, keep_sizes, remove_sizes)
            results = self._probe(run, outputs, target)
            return results[: len(keep_sizes)], results[len(keep_sizes):]

        search = PrefixSearch(
            query, run.space.n_features, original, original.confidence - tolerance, budget, anchors.baseline
        )
        k_suff, k_nec, k_comp, exact = search.run()
        sizes = {"sufficient": k_suff, "sufficient_necessary": k_nec, "complete": k_comp}
        keep_sizes = sorted({k for k in sizes.values() if k is not None})
        masks = dict(zip(keep_sizes, prefix_masks(ranking, keep_sizes))) if keep_sizes else {}
        shrunk, report, shrink_queries = None, None, 0
        if shrink_budget > 0 and k_suff is not None and k_suff > 1:
            shrunk, report = self._shrink(run, example, ranking, target, k_suff, candidates, shrink_budget)
            shrink_queries = report.queries
            if torch.equal(shrunk, masks[k_suff]):
                shrunk = None  # nothing dropped: the prefix is certified as before
        keeps = [masks[k] for k in keep_sizes] + ([shrunk] if shrunk is not None else [])
        kept_probes, removed, again, again_outputs = self._certify(
            run, example, target, keeps, masks.get(k_nec) if k_nec is not None else None
        )
        kept_shrunk = kept_probes[-1] if shrunk is not None else None
        kept_by_size = dict(zip(keep_sizes, kept_probes))
        messages = []
        scale = float(anchors.outputs.abs().max()) + 1.0
        stable = (
            again.decided == original.decided
            and again.passes == original.passes
            and float((again_outputs - anchors.outputs).abs().max()) <= STABILITY_TOLERANCE * scale
        )
        if not stable:
            messages.append(
                f"the model's output on the unmasked input changed between calls (by up to "
                f"{float((again_outputs - anchors.outputs).abs().max()):.3g}; class {original.decided} "
                f"then {again.decided}): a nondeterministic model (dropout or "
                "batch-norm in training mode?) or one whose output depends on the rest of its batch; "
                "no set can be certified (call model.eval())"
            )
        bins = run.space.feature_sizes()
        energy = run.space.feature_energy(example)
        level = energy / bins.clamp(min=1)  # per-bin energy: comparable across band sizes
        tie = getattr(run.decision, "tie_tolerance", None)
        sets: List[Optional[CausalSet]] = []
        for name, k in sizes.items():
            if k is None:
                sets.append(None)
                continue
            kept = kept_by_size[k]
            gone = removed if name == "sufficient_necessary" else None
            mask = masks[k].bool()
            if name == "sufficient" and shrunk is not None and report is not None:
                if kept_shrunk is not None and kept_shrunk.passes:
                    kept, mask, k = kept_shrunk, shrunk.bool(), report.size
                else:  # the shrunk set did not hold on re-query; the prefix did, and is returned
                    messages.append(
                        f"the shrunk sufficient set ({report.size} features) did not hold on re-query; the "
                        f"sufficient prefix ({k} features) is returned"
                    )
                    report = None
            if name == "sufficient":
                holds = kept.passes
            elif name == "sufficient_necessary":
                holds = kept.passes and gone is not None and bool(gone.changed)
            else:
                holds = kept.passes and kept.confidence >= original.confidence - tolerance
            note = set_note(name, k, holds, stable, kept, gone, tie)
            if not holds:
                messages.append(f"the {name.replace('_', '-and-')} set did not hold on re-query: {note}")
            key = "necessary" if name == "sufficient_necessary" else name
            cert = SetCertificate(k, kept, gone, holds and stable, exact[key], note)
            if name == "sufficient":
                cert.shrink = report
            sets.append(CausalSet(name, mask, int(bins[mask].sum()), cert, *loudness(mask, energy, level)))
        certification_queries = len(keeps) + (k_nec is not None) + 1
        return sets, search.queries + certification_queries + shrink_queries, messages, stable

    def _certify(
        self, run: _Run, example: int, target: int, keeps: List[Tensor], remove: Optional[Tensor]
    ) -> Tuple[List[ProbeResult], Optional[ProbeResult], ProbeResult, Tensor]:
        # Certification: the model on every returned set kept alone, on the input with the
        # sufficient-and-necessary set removed, and on the input again (is the model stable?), in
        # one batch. Each set's waveform is synthesised on its own, exactly as
        # Explanation.waveform rebuilds it, so a certificate holds on the waveform the user gets.
        keep_rows = keeps + ([1.0 - remove] if remove is not None else [])
        n_rows = len(keep_rows) + 1

        def batches() -> Iterator[Tuple[List[Tensor], int]]:
            for lo, hi in run.oracle.batches(n_rows):
                rows = run.rows.take(hi - lo)
                for j, i in enumerate(range(lo, hi)):
                    waves = (
                        tuple(w[0] for w in run.space.mutants(example, keep_rows[i].view(1, -1)))
                        if i < len(keep_rows)
                        else tuple(w[example] for w in run.waves)
                    )
                    for row, wave in zip(rows, waves):
                        row[j].copy_(wave)
                yield rows, example

        joined = run.oracle.scores_of(batches())
        results = self._probe(run, joined, target)
        kept = results[: len(keeps)]
        removed = results[len(keeps)] if remove is not None else None
        return kept, removed, results[-1], joined[-1]

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
        shrink: bool = False,
        max_shrink_queries: int = 64,
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
                        :mod:`captum_freqrex._core.certify.shrink`). The result is certified like every
                        set; ``sufficient.certificate.shrink`` reports the sizes before and after
                        and how far from 1-minimal the set is. Default: False
            max_shrink_queries (int, optional): Query budget of the shrink of one example, on top
                        of ``max_extraction_queries`` (its queries are counted in
                        ``extraction_queries``). Default: 64

        Returns:
            list of Explanation: One per example, in batch order.
        """
        if not 0.0 <= complete_tolerance < 1.0:
            raise ValueError(f"complete_tolerance must be in [0, 1), got {complete_tolerance}")
        if max_extraction_queries < 16:
            raise ValueError(f"max_extraction_queries must be >= 16, got {max_extraction_queries}")
        max_shrink_queries = as_int(max_shrink_queries, "max_shrink_queries", minimum=0)
        call_start = time.perf_counter()
        run = self._prepare(
            inputs, baselines, target, additional_forward_args, feature_mask, n_samples,
            perturbations_per_eval, seed, generator, max_depth, min_part_size, n_pieces,
            confidence_filter, max_queries, convergence_top_k, per_channel, decision, mode,
        )
        scores = None
        if attributions is not None:
            scores = run.space.from_grid(attributions if isinstance(attributions, tuple) else (attributions,)).cpu()
        total = QueryStats()
        explanations = []
        batch = range(run.space.batch_size)
        for example in progress(batch, len(batch), "FreqReX", show_progress):
            start = time.perf_counter()
            before = QueryStats(**vars(run.oracle.stats))
            candidates = None
            if scores is None:
                responsibility, anchors, refinement = self._responsibility(run, example)
                responsibility_queries, stopped_by = refinement.queries, refinement.stopped_by
                candidates = refinement.sets if run.mode == "sufficient" else None
            else:
                anchors, refinement = self._anchors(run, example), None
                responsibility, responsibility_queries, stopped_by = scores[example], 0, "attributions"
            ranking = rank_features(
                responsibility.to(run.space.device), run.space.feature_energy(example), rtol=rank_rtol
            )
            sets, extraction_queries, set_messages, stable = self._extract(
                run, example, ranking, anchors, complete_tolerance, max_extraction_queries,
                max_shrink_queries if shrink else 0, candidates,
            )
            sufficient, sufficient_necessary, complete = sets  # one per SET_NAMES
            messages = anchors.warnings + self._removal_warnings(run, anchors, refinement, sets=True) + set_messages
            issue_warnings(messages, example, run.space.batch_size)
            after = run.oracle.stats
            stats = QueryStats(
                after.queries - before.queries,
                after.forward_calls - before.forward_calls,
                after.model_seconds - before.model_seconds,
                time.perf_counter() - start,
            )
            total = total + stats
            values = responsibility.to(device=run.space.device, dtype=run.waves[0].dtype)
            grids = run.space.to_grid(values)
            explanations.append(
                Explanation(
                    grids if run.is_tuple else grids[0],
                    values,
                    ranking,
                    anchors.target,
                    anchors.original,
                    sufficient,
                    sufficient_necessary,
                    complete,
                    stats,
                    responsibility_queries,
                    extraction_queries,
                    stopped_by,
                    run.space.select(example),  # its own spectra only, not the whole batch's
                    0,
                    run.is_tuple,
                    baseline=anchors.baseline,
                    warnings=messages,
                    model_stable=stable,
                    settings=settings_record(
                        seed=run.seed, generator=generator is not None, target=run.targets[example],
                        baselines=baselines, feature_mask=feature_mask, n_samples=n_samples,
                        perturbations_per_eval=perturbations_per_eval, max_depth=max_depth,
                        min_part_size=min_part_size, n_pieces=n_pieces, confidence_filter=confidence_filter,
                        max_queries=max_queries, convergence_top_k=convergence_top_k, per_channel=per_channel,
                        mode=mode, complete_tolerance=complete_tolerance,
                        max_extraction_queries=max_extraction_queries, attributions=attributions is not None,
                        rank_rtol=rank_rtol, shrink=shrink, max_shrink_queries=max_shrink_queries,
                        domain=run.space.domain, decision=run.decision, search=self.search,
                        synthesis=self.synthesis,
                    ),
                    class_confidences=class_confidences(run.decision, anchors.outputs),
                )
            )
        # The whole call, as for attribute: the examples' own times leave out the set-up (spectra).
        total.total_seconds = time.perf_counter() - call_start
        self.last_stats = total
        return explanations
