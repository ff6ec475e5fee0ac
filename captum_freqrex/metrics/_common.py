"""What every model-based metric shares: inputs, features, targets, rankings and batched verdicts.

A metric builds one :class:`MetricRun` (waveforms, their frequency features, the model's outputs on
the unmasked inputs, the decision and one target per example), describes the mutants it needs as
rows ``(example, keep-mask over features)``, and gets back one :class:`ChangeVerdicts` entry per row from
:meth:`MetricRun.evaluate`. The model is called by the oracle FreqReX calls it through
(:class:`~captum_freqrex._core.model.oracle.Oracle`: the same output checks, counts and verdicts), in
batches of at most ``max_examples_per_batch`` rows cut by the shared helper in :mod:`._batching`.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Sequence, Tuple, Union, cast

import torch
from torch import Tensor

from captum_freqrex._core.model.decision import Decision, DecisionLike
from captum_freqrex._core.spectral.domains import SpectralDomain
from captum_freqrex._core.spectral.space import FeatureSpace
from captum_freqrex._core.model.oracle import Oracle, RowVerdicts, check_forward_func, rows_per_call
from captum_freqrex._core.model.outputs import OutputSelector, check_output_selector
from captum_freqrex._core.records import QueryStats
from captum_freqrex._core.certify.ranking import DEFAULT_RTOL, rank_features
from captum_freqrex._core.model.targets import TargetLike, flat_target_index, targets_per_example
from captum_freqrex._utils.validation import TensorOrTuple, as_tuple, format_baselines, format_waveforms
from captum_freqrex.metrics._batching import check_max_examples_per_batch, divide_and_aggregate


@dataclass
class ChangeVerdicts(RowVerdicts):
    r"""The oracle's verdicts on rows of mutants (:class:`~captum_freqrex._core.model.oracle.RowVerdicts`:
    ``decided``, ``confidence``, ``decided_confidence``, ``passes``, ``changes`` (a row within the
    decision's tie tolerance neither passes nor changes, so no verdict rests on float noise),
    ``margin``), plus the loudness of each change.

    Attributes:
        noise_energy (Tensor): ``(N,)`` float64, ``sum((mutant - original)^2)`` over all samples of
                    all inputs (the energy of the change, in squared waveform units).
    """

    noise_energy: Tensor

    @classmethod
    def of(cls, verdicts: RowVerdicts, noise_energy: Tensor) -> "ChangeVerdicts":
        """The oracle's ``verdicts`` with the noise energy of each row."""
        return cls(**vars(verdicts), noise_energy=noise_energy)


def resolve_targets(
    target: TargetLike, outputs: Tensor, output_shape: Tuple[int, ...], decision: Decision
) -> Tensor:
    r"""One flat target index per example, ``(B,)`` long, Captum's ``target`` conventions.

    Args:
        target: None (the decision on the unmasked input), an int or a tuple (one output index for
                    every example), a list with one of those per example, or a tensor: a scalar or
                    ``(B,)``.
        outputs (Tensor): ``(B, K)`` flattened model outputs on the unmasked inputs.
        output_shape (tuple of int): The model's output shape per example, before flattening.
        decision (Decision): Gives the classes and the number of valid targets.
    """
    if target is None:
        return decision.classes(outputs).long()
    n_classes = decision.num_classes(outputs)
    flat = [flat_target_index(t, output_shape, n_classes) for t in targets_per_example(target, outputs.shape[0])]
    return torch.tensor(flat, dtype=torch.long, device=outputs.device)


class MetricRun:
    r"""The shared state of one metric call.

    Args:
        forward_func (Callable): The model.
        inputs (Tensor or tuple of Tensor): Waveforms ``(B, T)`` or ``(B, C, T)``.
        baselines: Captum-style baselines (see :meth:`FreqReX.attribute`).
        target: Captum-style target; None is the model's decision on the unmasked input.
        additional_forward_args: Passed to the model after the waveforms; tensors whose first
                    dimension is ``B`` are indexed per row.
        feature_mask: Feature ids per bin, as for :class:`FeatureSpace`.
        max_examples_per_batch (int, optional): Most rows per model call; None picks a
                    memory-bounded size (at most 128).
        domain (SpectralDomain, optional): The transform.
        per_channel (bool): Per-channel features.
        decision: The decision rule, as for :class:`FreqReX`.
        query_model (bool): Query the model on the unmasked inputs (targets, decision).
        output (None, str, int or Callable): Where the scores are in the model's output, as for
                    :class:`FreqReX` (see :func:`~captum_freqrex._core.model.outputs.select_output`).
    """

    def __init__(
        self,
        forward_func: Optional[Callable],
        inputs: TensorOrTuple,
        baselines: Any = None,
        target: TargetLike = None,
        additional_forward_args: Any = None,
        feature_mask: Any = None,
        max_examples_per_batch: Optional[int] = None,
        domain: Optional[SpectralDomain] = None,
        per_channel: bool = False,
        decision: DecisionLike = None,
        query_model: bool = True,
        output: OutputSelector = None,
    ) -> None:
        check_max_examples_per_batch(max_examples_per_batch)
        self.output = check_output_selector(output)
        self.waves, self.is_tuple = format_waveforms(inputs)
        self.space = FeatureSpace(
            self.waves, format_baselines(baselines, self.waves), feature_mask, domain, per_channel
        )
        self.batch_size = self.space.batch_size
        self.max_rows = rows_per_call(self.waves, max_examples_per_batch)
        # A sum over at least one input's tensor: a Tensor, never sum()'s start value 0.
        self.signal_energy = cast(Tensor, sum(w.double().square().reshape(self.batch_size, -1).sum(1) for w in self.waves))
        if not query_model:
            return
        self.oracle = Oracle(check_forward_func(forward_func), self.output, additional_forward_args, self.batch_size, self.max_rows)
        examples = torch.arange(self.batch_size, device=self.space.device)
        # The model gets copies of the caller's waveforms (mutants are fresh tensors already): a
        # model that edits its input in place must not edit the caller's tensors, nor the
        # originals that every change's SNR is measured against.
        self.outputs = divide_and_aggregate(
            self.batch_size,
            lambda start, stop: self.forward(tuple(w[start:stop].clone() for w in self.waves), examples[start:stop]),
            lambda a, b: torch.cat([a, b]),
            self.max_rows,
        )
        # Decided once per call, from the outputs on the unmasked inputs (every "auto" choice of
        # the decision, e.g. logits or probabilities, is fixed here): every batch of mutants is
        # then read the same way, whatever else shares its batch.
        self.decision = self.oracle.decide(decision, self.outputs)
        self.targets = resolve_targets(target, self.outputs, self.output_shape or (1,), self.decision)
        zero = torch.zeros(self.batch_size, dtype=torch.float64, device=self.space.device)
        self.original = self.verdicts(self.outputs, self.targets, zero)

    # ------------------------------------------------------------------ model

    @property
    def output_shape(self) -> Tuple[int, ...]:
        """Shape of one waveform's scores (``()`` for one score per waveform)."""
        return self.oracle.output_shape or ()

    @property
    def stats(self) -> QueryStats:
        """The queries and model calls of this metric (the oracle's counts)."""
        return self.oracle.stats

    def forward(self, waves: Sequence[Tensor], examples: Tensor) -> Tensor:
        r"""Model outputs ``(N, K)`` (flattened, detached) on waveforms ``(N, ...)`` of ``examples``,
        in one call of the oracle: FreqReX's output checks (:func:`~captum_freqrex._core.model.outputs.check_model_outputs`,
        after ``output=`` picks the scores), its counts and its slicing of
        ``additional_forward_args`` (indexed per row here).

        Raises:
            TypeError: The model returned no tensor, or bool, integer or complex scores.
            ValueError: The outputs have no row per waveform, hold NaN or Inf, or change width.
        """
        return self.oracle.scores(waves, examples)

    def verdicts(self, outputs: Tensor, targets: Tensor, noise_energy: Tensor) -> ChangeVerdicts:
        """Decisions, target confidences and keep / change verdicts of outputs ``(N, K)``."""
        return ChangeVerdicts.of(self.oracle.verdicts(outputs, targets), noise_energy)

    def evaluate(self, examples: Tensor, keep: Callable[[Tensor], Tensor]) -> ChangeVerdicts:
        r"""The model's verdicts on mutant rows, queried in batches of at most ``max_rows``.

        Args:
            examples (Tensor): ``(N,)`` long, the example of each row.
            keep (Callable): ``keep(rows)`` returns the keep values ``(len(rows), n_features)`` of
                        the rows ``rows`` (indices into ``examples``): 1 keeps a feature, 0 sets it
                        to the baseline, other values scale it. Built per batch, so a metric over
                        many rows never holds all of their masks at once.

        Returns:
            ChangeVerdicts: One entry per row.
        """
        examples = examples.to(self.space.device)
        dtype = self.waves[0].dtype

        def batch(start: int, stop: int) -> ChangeVerdicts:
            rows = torch.arange(start, stop, device=self.space.device)
            ex = examples[start:stop]
            values = keep(rows).to(device=self.space.device, dtype=dtype)
            mutants = self.space.grid_mutants(ex, self.space.to_grid(values))
            # One Tensor per input, at least one: never sum()'s start value 0.
            noise = cast(Tensor, sum(
                (m - w[ex]).double().square().reshape(len(rows), -1).sum(1) for m, w in zip(mutants, self.waves)
            ))
            return self.verdicts(self.forward(mutants, ex), self.targets[ex], noise)

        return divide_and_aggregate(examples.numel(), batch, ChangeVerdicts.cat, self.max_rows)

    def evaluate_prefixes(
        self, positions: Tensor, examples: Tensor, sizes: Tensor, top: float, rest: float
    ) -> ChangeVerdicts:
        r"""ChangeVerdicts on rows that set the top-``size`` features of a ranking to ``top`` and the others
        to ``rest`` (keep values: ``top=1, rest=0`` keeps a prefix alone, ``top=0, rest=1`` removes it).

        Args:
            positions (Tensor): ``(B, n_features)`` rank position of each feature (see
                        :meth:`positions`).
            examples (Tensor): ``(N,)`` long, the example of each row.
            sizes (Tensor): ``(N,)`` long, the prefix size of each row.
            top (float): Keep value of the features inside the prefix.
            rest (float): Keep value of the others.
        """
        examples = examples.to(self.space.device)
        sizes = sizes.to(self.space.device)

        def keep(rows: Tensor) -> Tensor:
            inside = positions[examples[rows]] < sizes[rows].unsqueeze(1)
            return torch.where(inside, top, rest).double()

        return self.evaluate(examples, keep)

    # ------------------------------------------------------------------ features

    def _check_grids(self, values: TensorOrTuple, name: str) -> Tuple[Tensor, ...]:
        parts = as_tuple(values)
        if len(parts) != len(self.waves) or isinstance(values, tuple) != self.is_tuple:
            raise ValueError(
                f"{name} must match inputs: {'a tuple of ' + str(len(self.waves)) if self.is_tuple else 'one'} "
                f"tensor(s) shaped (batch, *feature_grid), got "
                f"{'a tuple of ' + str(len(parts)) if isinstance(values, tuple) else 'one tensor'}"
            )
        out = []
        for part, grid in zip(parts, self.space.feature_grids):
            if not isinstance(part, Tensor):
                raise TypeError(f"{name} must hold tensors, got {type(part).__name__}")
            if tuple(part.shape) == grid:
                part = part.unsqueeze(0).expand((self.batch_size,) + grid)
            if tuple(part.shape) != (self.batch_size,) + grid:
                raise ValueError(
                    f"{name} of shape {tuple(part.shape)} does not match the feature grid "
                    f"{(self.batch_size,) + grid} (batch, *feature_grid): one value per frequency "
                    "bin, as FreqReX.attribute and FrequencyForward-based Captum methods return"
                )
            out.append(part.detach().to(self.space.device))
        return tuple(out)

    def feature_scores(self, attributions: TensorOrTuple) -> Tensor:
        r"""Per-feature scores ``(B, n_features)``: the mean attribution over each feature's bins."""
        grids = self._check_grids(attributions, "attributions")
        if any(g.is_complex() for g in grids):
            raise TypeError("attributions must be real; pass attributions.abs() for complex values")
        scores = self.space.from_grid(tuple(g.double() for g in grids))
        if not torch.isfinite(scores).all():
            raise ValueError("attributions contain NaN or Inf; rankings need finite scores")
        return scores

    def positions(self, attributions: TensorOrTuple, rank_rtol: float = DEFAULT_RTOL) -> Tensor:
        r"""Rank position of every feature, ``(B, n_features)`` long (0 = highest attribution).

        Features are ranked by descending score; ties and near ties (scores within ``rank_rtol``)
        go to the feature with more spectral energy (then to the lower index), as in
        :meth:`FreqReX.explain`, so the ranking is deterministic.
        """
        scores = self.feature_scores(attributions)
        energy = torch.stack([self.space.feature_energy(example) for example in range(self.batch_size)])
        order = rank_features(scores, energy, rtol=rank_rtol)
        positions = torch.empty_like(order)
        ranks = torch.arange(order.shape[1], device=order.device).expand_as(order)
        return positions.scatter_(1, order, ranks)

    def feature_set(self, feature_set: TensorOrTuple) -> Tensor:
        r"""Per-feature membership ``(B, n_features)`` bool of a per-bin set: a feature is in the
        set when any of its bins is."""
        grids = self._check_grids(feature_set, "feature_set")
        return self.space.from_grid(tuple((g != 0).double() for g in grids)) > 0

    def sizes(self, k: Union[int, Sequence[int]], name: str = "k") -> Tuple[List[int], bool]:
        r"""Validate feature counts: ints in ``[0, n_features]``, never rounded.

        Args:
            k (int, sequence of int or Tensor): The counts; an integer tensor is read as a sequence
                        (or as one int when 0-dimensional).
            name (str, optional): The argument's name, for error messages. Default: "k"

        Returns:
            tuple: The counts as a list of int, and whether a single int was given.

        Raises:
            TypeError: A count is not an int (a float such as ``2.7``, or a bool).
            ValueError: ``k`` is empty or a count is out of range.
        """
        if isinstance(k, Tensor):
            k = k.tolist()
        single = not isinstance(k, (list, tuple, range))
        raw: List[Any] = [k] if single else list(k)  # type: ignore[arg-type]  # checked one by one below
        if not raw:
            raise ValueError(f"{name} is empty; pass an int or a sequence of ints")
        n = self.space.n_features
        values = []
        for value in raw:
            try:
                if isinstance(value, bool):
                    raise TypeError
                values.append(operator.index(value))
            except TypeError:
                raise TypeError(
                    f"{name} values must be ints (numbers of features), got {value!r}; floats are "
                    "refused rather than truncated"
                ) from None
            if not 0 <= values[-1] <= n:
                raise ValueError(f"{name} values must be in [0, {n}] (the number of features), got {value}")
        return values, single
