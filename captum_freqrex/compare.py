"""FreqReX vs Captum's methods over the same frequency features, scored by the same metrics.

:func:`compare_methods` attributes a batch of clips with FreqReX (both search modes: what keeps
the decision, ``"FreqReX"``, and what changes it when removed, ``"FreqReX-necessary"``), Captum's IntegratedGradients,
KernelShap, Lime, FeatureAblation and ShapleyValueSampling (through :class:`FrequencyForward`, so
every method sees the same mutants of the same spectra), and two naive rankings (the spectral
magnitude of each feature; a seeded random order). Every ranking is then scored by
:mod:`captum_freqrex.metrics` over the same evaluation features: flip rate when the top-k features
are removed, the minimal sufficient prefix, deletion and insertion AUC; and every method's cost is
counted the same way, by the one caller of the model every method goes through
(:class:`~captum_freqrex._core.model.oracle.Oracle`, FreqReX's own; Captum's methods get it as their
model): model queries, wall time, model time vs overhead, all from one :class:`QueryStats` per clip.

Tractability. FeatureAblation costs one query per feature, ShapleyValueSampling one per feature
per permutation, and KernelShap and Lime fit a regression with one column per feature. Over the
240,001 single rfft bins of a 30 s clip at 16 kHz they are intractable, so whenever the evaluation
features outnumber ``max_perturbation_features`` these four methods attribute over a band mask
instead (``band_mask``; by default log-spaced bands), and the table says so in its ``features``
column. Their rankings are still evaluated over the evaluation features: a band's score goes to all
of its bins, and inside that tie the louder bin ranks first (the rule every ranking gets), so a band
method can only single out a bin of its band by loudness, which is the honest cost of the band
approximation.
"""

from __future__ import annotations

import csv
import math
import operator
import os
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch
from torch import Tensor

from captum_freqrex._core.spectral.bands import linear_bands, log_bands
from captum_freqrex._core.model.decision import DecisionLike
from captum_freqrex._core.spectral.domains import SpectralDomain
from captum_freqrex._core.spectral.space import FeatureSpace
from captum_freqrex._core.forward_wrapper import FrequencyForward
from captum_freqrex._core.certify.ranking import DEFAULT_RTOL
from captum_freqrex._core.freqrex import FreqReX
from captum_freqrex._core.model.oracle import Oracle
from captum_freqrex._core.model.querier import OutputSelector, QueryStats, check_output_selector
from captum_freqrex._core.model.targets import TargetLike
from captum_freqrex._utils.validation import format_baselines, format_waveforms
from captum_freqrex.metrics import (
    deletion_curve,
    insertion_curve,
    minimal_sufficient_prefix,
    perturbation_success_rate,
)
from captum_freqrex.metrics._common import MetricRun
from captum_freqrex.metrics._curves import MAX_SCAN_FEATURES

__all__ = ["ComparisonTable", "compare_methods", "load_zoo_inputs", "ZooInputs", "METHODS"]

#: Every method :func:`compare_methods` knows, in table order.
METHODS: Tuple[str, ...] = (
    "FreqReX",
    "FreqReX-necessary",
    "IntegratedGradients",
    "KernelShap",
    "Lime",
    "FeatureAblation",
    "ShapleyValueSampling",
    "magnitude",
    "random",
)

#: Methods whose cost grows with the number of features (they get a band mask when there are many).
PER_FEATURE_COST = frozenset({"KernelShap", "Lime", "FeatureAblation", "ShapleyValueSampling"})


@dataclass
class ComparisonTable:
    r"""The result of :func:`compare_methods`: one row per method.

    Attributes:
        rows (list of dict): Per method: ``method``, ``features`` (what it attributed over),
                    ``queries`` / ``wall_s`` / ``model_s`` / ``overhead_s`` (per clip, mean, for
                    the attribution alone), ``flip@k`` (fraction of clips whose decision changes
                    when the top-k evaluation features are removed, in [0, 1]), ``snr_db@k``
                    (median SNR of that removal, dB), ``min_sufficient`` (median size of the
                    minimal sufficient prefix, in evaluation features, over the clips with one:
                    the first sufficient size evaluated, see
                    :func:`~captum_freqrex.metrics.minimal_sufficient_prefix`),
                    ``sufficient_found`` (fraction of clips with one), ``sufficient_monotone``
                    (fraction of clips whose sufficiency was monotone over the prefix sizes
                    evaluated; below 1, ``min_sufficient`` rests on a ranking that loses the
                    decision again as it grows, and the notes say so), ``deletion_auc`` /
                    ``insertion_auc`` (mean, in [0, 1]) and ``error`` (None, or why the method
                    failed).
        notes (list of str): How the table was made: features, budgets, what the columns count.
    """

    rows: List[Dict[str, Any]]
    notes: List[str] = field(default_factory=list)

    @property
    def columns(self) -> List[str]:
        """Column names, in first-seen order."""
        names: List[str] = []
        for row in self.rows:
            names += [key for key in row if key not in names]
        return names

    def row(self, method: str) -> Dict[str, Any]:
        """The row of one method."""
        for row in self.rows:
            if row["method"] == method:
                return row
        raise KeyError(f"no row for {method!r}; methods: {[r['method'] for r in self.rows]}")

    @staticmethod
    def _format(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            if math.isnan(value):
                return "nan"
            if math.isinf(value):
                return "inf" if value > 0 else "-inf"
            if value.is_integer():
                return str(int(value))
            return f"{value:.3f}" if abs(value) < 1000 else f"{value:.0f}"
        return str(value).replace("|", "/")

    def to_markdown(self) -> str:
        """The table as GitHub Markdown, followed by its notes as a list."""
        columns = self.columns
        lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(self._format(row.get(c)) for c in columns) + " |" for row in self.rows]
        if self.notes:
            lines += [""] + [f"- {note}" for note in self.notes]
        return "\n".join(lines)

    def to_csv(self, path: str) -> None:
        """Write the rows as CSV (one line per method; empty cells for missing values)."""
        with open(path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.columns)
            writer.writeheader()
            writer.writerows(self.rows)

    def save(self, directory: str) -> Tuple[str, str]:
        r"""Write ``compare.md`` (table and notes) and ``compare.csv`` into ``directory``.

        Args:
            directory (str): The folder; created when missing.

        Returns:
            tuple of str: The paths of the Markdown and the CSV file.
        """
        os.makedirs(directory, exist_ok=True)
        markdown, table_csv = os.path.join(directory, "compare.md"), os.path.join(directory, "compare.csv")
        with open(markdown, "w") as handle:
            handle.write(self.to_markdown() + "\n")
        self.to_csv(table_csv)
        return markdown, table_csv

    def __str__(self) -> str:
        return self.to_markdown()


@dataclass
class _Attribution:
    values: Tensor  # (B, *feature_grid)
    features: str
    stats: List[QueryStats]  # per clip, from the oracle that called the model

    @property
    def queries(self) -> List[int]:
        return [s.queries for s in self.stats]


@dataclass
class _Setup:
    model: Callable
    clips: Tensor
    baselines: Any
    targets: Tensor  # (B,) flat target indices
    captum_targets: List[Any]  # per clip: what Captum's ``target`` gets
    signs: List[float]  # per clip: -1 where a single-output model's decision is class 0
    eval_mask: Any
    eval_features: str
    n_eval: int
    band_mask: Any
    band_features: str
    n_band: int
    domain: Optional[SpectralDomain]
    per_channel: bool
    decision: DecisionLike
    output: OutputSelector = None


def _stack_clips(clips: Any) -> Tensor:
    if isinstance(clips, Tensor):
        return clips.unsqueeze(0) if clips.dim() == 1 else clips
    waves = [getattr(c, "waveform", c) for c in clips]
    if not waves or not all(isinstance(w, Tensor) for w in waves):
        raise TypeError("clips must be a tensor (B, T) or (B, C, T), or a non-empty sequence of (T,) tensors")
    if len({tuple(w.shape) for w in waves}) > 1:
        raise ValueError(
            f"clips differ in shape ({sorted({tuple(w.shape) for w in waves})}); crop or pad them to one "
            "length (e.g. captum_freqrex.next_fast_len of the longest)"
        )
    return torch.stack(waves)


class ZooInputs(NamedTuple):
    """An example model and its sample clips, ready for :func:`compare_methods`."""

    model: Callable
    clips: Tensor  # (B, T) or (B, C, T), cropped or zero-padded to the model's num_samples
    sample_rate: int
    labels: List[str]


def load_zoo_inputs(name: str = "instruments", n_clips: int = 4) -> ZooInputs:
    r"""The zoo model ``name`` and its first ``n_clips`` sample clips, fitted to its input length.

    Raises:
        ImportError: When :mod:`captum_freqrex.zoo` is not installed.
    """
    try:
        from captum_freqrex import zoo
    except ImportError as error:
        raise ImportError(
            f"captum_freqrex.zoo is not available ({error}); pass model= and clips= to compare_methods"
        ) from error
    loaded = zoo.load(name)
    clips = list(zoo.sample_clips(name))[:n_clips]
    if not clips:
        raise ValueError(f"the zoo has no sample clips for {name!r}")
    length = loaded.num_samples
    waves = []
    for clip in clips:
        wave = clip.waveform[..., :length]
        waves.append(torch.nn.functional.pad(wave, (0, length - wave.shape[-1])))
    return ZooInputs(loaded.model, torch.stack(waves), loaded.sample_rate, [str(c.label) for c in clips])


def _clip_baselines(baselines: Any, clips: Tensor, i: int) -> Any:
    """The baselines of clip ``i`` alone: per-clip baseline tensors ``(B, ...)`` are sliced."""
    if isinstance(baselines, Tensor) and baselines.dim() == clips.dim() and baselines.shape[0] == clips.shape[0] > 1:
        return baselines[i : i + 1]
    return baselines


def _feature_ids(
    clips: Tensor, baselines: Any, mask: Any, domain: Optional[SpectralDomain], per_channel: bool
) -> Tuple[Tensor, int]:
    """Feature ids 0..n-1 per bin, shaped ``(1, *feature_grid)`` for Captum, and n."""
    waves, _ = format_waveforms(clips[:1])
    bases = format_baselines(_clip_baselines(baselines, clips, 0), waves)
    space = FeatureSpace(waves, bases, mask, domain, per_channel)
    return space.ids()[0].unsqueeze(0), space.n_features


def _default_band_mask(
    num_samples: int, sample_rate: Optional[float], n_bands: int, domain: Optional[SpectralDomain]
) -> Tuple[Tensor, str]:
    if sample_rate:
        return log_bands(num_samples, n_bands, sample_rate=sample_rate, domain=domain), "log bands"
    return linear_bands(num_samples, n_bands, domain=domain), "linear bands"


def _captum_target(flat: int, output_shape: Tuple[int, ...]) -> Any:
    if len(output_shape) <= 1:
        return flat
    index = []
    for size in reversed(output_shape):
        index.append(flat % size)
        flat //= size
    return tuple(reversed(index))


def _run_freqrex(setup: _Setup, options: Dict[str, Any]) -> _Attribution:
    explainer = FreqReX(setup.model, domain=setup.domain, decision=setup.decision, output=setup.output)
    values, stats = [], []
    for i in range(setup.clips.shape[0]):
        values.append(
            explainer.attribute(
                setup.clips[i : i + 1],
                baselines=_clip_baselines(setup.baselines, setup.clips, i),
                target=int(setup.targets[i]),
                feature_mask=setup.eval_mask,
                per_channel=setup.per_channel,
                **options,
            )
        )
        stats.append(explainer.last_stats)  # its oracle's counts, and the whole call's time
    return _Attribution(torch.cat(values), setup.eval_features, stats)


#: Methods that fit their surrogate linear model with scikit-learn (the ``compare`` extra).
_NEEDS_SKLEARN = frozenset({"KernelShap", "Lime"})


def _require_sklearn(method: str) -> None:
    """Raise an ImportError that names the extra when scikit-learn, which ``method`` needs, is missing."""
    try:
        import sklearn.linear_model  # noqa: F401
    except ImportError as error:
        raise ImportError(
            f"{method} fits its surrogate linear model with scikit-learn, which is not installed: "
            'pip install "captum_freqrex[compare]" (or pip install scikit-learn)'
        ) from error


def _run_captum(setup: _Setup, name: str, budgets: List[int], ig_steps: int, ppe: int) -> _Attribution:
    coarse = name in PER_FEATURE_COST and setup.band_mask is not None
    mask, n_features, features = (
        (setup.band_mask, setup.n_band, setup.band_features) if coarse else (setup.eval_mask, setup.n_eval, setup.eval_features)
    )
    ids = _feature_ids(setup.clips, setup.baselines, mask, setup.domain, setup.per_channel)[0] if mask is not None else None
    values, stats = [], []
    for i in range(setup.clips.shape[0]):
        # The model is called by an oracle, as FreqReX's is: the same checks, counts and clock.
        oracle = Oracle(setup.model, setup.output)
        attr = _captum_attribution(setup, name, oracle, i, ids, n_features, budgets, ig_steps, ppe)
        values.append(attr.detach() * setup.signs[i])
        stats.append(oracle.stats)
    return _Attribution(torch.cat(values), features, stats)


def _captum_attribution(
    setup: _Setup, name: str, oracle: Oracle, i: int, ids: Optional[Tensor], n_features: int, budgets: List[int],
    ig_steps: int, ppe: int,
) -> Tensor:
    from captum.attr import FeatureAblation, IntegratedGradients, KernelShap, Lime, ShapleyValueSampling

    with oracle.measure():  # the wrapper's spectra count, as FreqReX's do
        wrapped = FrequencyForward(
            oracle, setup.clips[i : i + 1], _clip_baselines(setup.baselines, setup.clips, i), setup.domain,
            setup.per_channel,
        )
        common = dict(baselines=wrapped.zeros(), target=setup.captum_targets[i])
        if name == "IntegratedGradients":
            with torch.enable_grad():
                attr = IntegratedGradients(wrapped).attribute(
                    wrapped.ones(), n_steps=ig_steps, internal_batch_size=ppe, **common
                )
        elif name == "FeatureAblation":
            attr = FeatureAblation(wrapped).attribute(
                wrapped.ones(), feature_mask=ids, perturbations_per_eval=ppe, **common
            )
        elif name == "ShapleyValueSampling":
            permutations = max(1, round((budgets[i] - 1) / n_features))
            attr = ShapleyValueSampling(wrapped).attribute(
                wrapped.ones(), feature_mask=ids, n_samples=permutations, perturbations_per_eval=ppe, **common
            )
        else:
            _require_sklearn(name)
            method = KernelShap if name == "KernelShap" else Lime
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # sklearn convergence chatter on tiny budgets
                attr = method(wrapped).attribute(
                    wrapped.ones(), feature_mask=ids, n_samples=max(budgets[i], 2), perturbations_per_eval=ppe,
                    **common,
                )
    return attr


def _run_naive(setup: _Setup, name: str, seed: int) -> _Attribution:
    start = time.perf_counter()
    waves, _ = format_waveforms(setup.clips)
    bases = format_baselines(setup.baselines, waves)
    if name == "magnitude":  # |X - Xb| per bin (summed over shared channels)
        space = FeatureSpace(waves, bases, None, setup.domain, setup.per_channel)
        energy = torch.stack([space.feature_energy(i) for i in range(space.batch_size)])
        values = space.to_grid(energy.sqrt().to(waves[0].dtype))[0]
    else:  # one uniform draw per evaluation feature, every bin of a feature alike
        space = FeatureSpace(waves, bases, setup.eval_mask, setup.domain, setup.per_channel)
        generator = torch.Generator().manual_seed(seed)
        draws = torch.rand(space.batch_size, space.n_features, generator=generator, dtype=torch.float64)
        values = space.to_grid(draws.to(space.device, waves[0].dtype))[0]
    per_clip = (time.perf_counter() - start) / setup.clips.shape[0]
    n = setup.clips.shape[0]
    features = f"{values[0].numel()} bins (magnitude)" if name == "magnitude" else setup.eval_features
    return _Attribution(values, features, [QueryStats(total_seconds=per_clip) for _ in range(n)])


def _mean(values: Sequence[float]) -> float:
    return float(statistics.fmean(values)) if values else float("nan")


def _median(values: Tensor) -> float:
    """The median, averaging the two middle values of an even count (``torch.median`` takes the lower)."""
    return float(statistics.median(values.double().tolist()))


def _score(
    setup: _Setup, attribution: _Attribution, ks: Sequence[int], n_steps: int, max_batch: Optional[int],
    rank_rtol: float = DEFAULT_RTOL,
) -> Dict[str, Any]:
    common = dict(
        rank_rtol=rank_rtol,
        baselines=setup.baselines,
        target=setup.targets,
        feature_mask=setup.eval_mask,
        max_examples_per_batch=max_batch,
        domain=setup.domain,
        per_channel=setup.per_channel,
        decision=setup.decision,
        output=setup.output,
    )
    model, clips, values = setup.model, setup.clips, attribution.values
    row: Dict[str, Any] = {}
    evaluations = [("", setup.eval_mask, setup.n_eval)]
    if setup.band_mask is not None:
        evaluations.append(("_bands", setup.band_mask, setup.n_band))
    for suffix, mask, n_features in evaluations:
        feasible = [k for k in ks if k <= n_features]
        rates: Dict[int, Any] = {k: None for k in ks}
        snrs: Dict[int, Any] = {k: None for k in ks}
        if feasible:
            flips = perturbation_success_rate(model, clips, values, k=feasible, **{**common, "feature_mask": mask})
            for j, k in enumerate(feasible):
                rates[k] = float(flips.success_rate[j])
                snrs[k] = _median(flips.snr_db[:, j])
        row.update({f"flip@{k}{suffix}": rates[k] for k in ks})
        row.update({f"snr_db@{k}{suffix}": snrs[k] for k in ks})
    prefix = minimal_sufficient_prefix(model, clips, values, **common)
    deletion = deletion_curve(model, clips, values, n_steps=n_steps, **common)
    insertion = insertion_curve(model, clips, values, n_steps=n_steps, **common)
    found = prefix.size[prefix.found]
    row["min_sufficient"] = _median(found) if found.numel() else None
    row["sufficient_found"] = float(prefix.found.double().mean())
    row["sufficient_monotone"] = float(prefix.monotone.double().mean())
    row["deletion_auc"] = float(deletion.auc.mean())
    row["insertion_auc"] = float(insertion.auc.mean())
    return row


def _prepare(
    model: Callable,
    clips: Tensor,
    baselines: Any,
    target: TargetLike,
    feature_mask: Any,
    band_mask: Any,
    n_bands: int,
    max_perturbation_features: int,
    sample_rate: Optional[float],
    domain: Optional[SpectralDomain],
    per_channel: bool,
    decision: DecisionLike,
    max_batch: Optional[int],
    output: OutputSelector = None,
) -> _Setup:
    run = MetricRun(
        model, clips, baselines, target, None, feature_mask, max_batch, domain, per_channel, decision,
        output=output,
    )
    n_eval = run.space.n_features
    eval_features = f"{n_eval} bins" if feature_mask is None else f"{n_eval} features (feature_mask)"
    band, band_features, n_band = None, "", 0
    if n_eval > max_perturbation_features:
        if band_mask is None:
            band_mask, kind = _default_band_mask(clips.shape[-1], sample_rate, n_bands, domain)
        else:
            kind = "bands (band_mask)"
        n_band = _feature_ids(clips, baselines, band_mask, domain, per_channel)[1]
        band, band_features = band_mask, f"{n_band} {kind}"
    output_shape = run.output_shape or (1,)
    single_output = math.prod(output_shape) == 1
    targets = run.targets.cpu()
    captum_targets = [None if single_output else _captum_target(int(t), output_shape) for t in targets]
    signs = [(-1.0 if single_output and int(t) == 0 else 1.0) for t in targets]
    # run.decision is the decision fixed from the outputs on the clips (logits or probabilities
    # decided once): FreqReX and every metric read every batch of mutants the same way.
    return _Setup(
        model, clips, baselines, run.targets, captum_targets, signs, feature_mask, eval_features, n_eval,
        band, band_features, n_band, domain, per_channel, run.decision, output,
    )


def compare_methods(
    model: Optional[Callable] = None,
    clips: Any = None,
    methods: Optional[Sequence[str]] = None,
    *,
    baselines: Any = None,
    target: TargetLike = None,
    feature_mask: Any = None,
    band_mask: Any = None,
    n_bands: int = 256,
    max_perturbation_features: int = 1024,
    sample_rate: Optional[float] = None,
    ks: Sequence[int] = (1, 5),
    budget: Optional[int] = None,
    n_samples: int = 8,
    max_queries: Optional[int] = 1000,
    ig_steps: int = 32,
    perturbations_per_eval: int = 32,
    n_steps: int = 32,
    max_examples_per_batch: Optional[int] = None,
    domain: Optional[SpectralDomain] = None,
    per_channel: bool = False,
    decision: DecisionLike = None,
    seed: int = 0,
    zoo_model: str = "instruments",
    n_clips: int = 4,
    strict: bool = False,
    show_progress: bool = False,
    output: Any = None,
) -> ComparisonTable:
    r"""Compare FreqReX, Captum's methods and naive rankings on the same clips, model and features.

    Each method attributes every clip alone (so its cost per clip is measured), over the frequency
    features of :class:`FrequencyForward`; then every ranking is scored by the same metrics over
    the same evaluation features (``feature_mask``): flip rate at each ``k`` (top-k removed),
    median SNR of those removals, the median minimal sufficient prefix (and the share of clips
    whose sufficiency was monotone along the ranking, which that median's meaning rests on), mean
    deletion and insertion AUC. Methods with a sampling budget get FreqReX's: KernelShap and Lime
    draw as many samples as FreqReX made queries on that clip, ShapleyValueSampling as many
    permutations as make about as many queries; FeatureAblation costs one query per feature plus one. When the evaluation
    features outnumber ``max_perturbation_features``, the per-feature-cost methods (KernelShap,
    Lime, FeatureAblation, ShapleyValueSampling) attribute over ``band_mask`` instead, since over
    e.g. the 240,001 bins of a 30 s clip at 16 kHz they are intractable; their ``features`` cell
    says so.

    Args:
        model (Callable, optional): The classifier, waveforms ``(B, T)`` or ``(B, C, T)`` to scores.
                    None loads ``zoo_model`` from :mod:`captum_freqrex.zoo`. Default: None
        clips (Tensor or sequence, optional): ``(B, T)`` / ``(B, C, T)`` waveforms, or a sequence
                    of equal-length ``(T,)`` tensors or objects with a ``.waveform``. None takes the
                    zoo model's first ``n_clips`` sample clips. Default: None
        methods (sequence of str, optional): Names from :data:`METHODS` (``"FreqReX"``,
                    ``"FreqReX-necessary"`` (``mode="necessary"``: ranks what fools the model),
                    ``"IntegratedGradients"``, ``"KernelShap"``, ``"Lime"``, ``"FeatureAblation"``,
                    ``"ShapleyValueSampling"``, ``"magnitude"``, ``"random"``). Default: all
        baselines (scalar or Tensor, optional): What removed frequencies become. Default: None
        target (int, Tensor or list, optional): The decision to explain per clip. Default: None
                    (the model's own decision)
        feature_mask (Tensor, optional): The evaluation features (and the features of every
                    method that can afford them). Default: None (single bins)
        band_mask (Tensor, optional): Features of the per-feature-cost methods when the evaluation
                    features are too many. Default: ``log_bands(T, n_bands, sample_rate=sample_rate)`` (or
                    linear bands without a sample rate)
        n_bands (int, optional): Bands of the default ``band_mask``. Default: 256
        max_perturbation_features (int, optional): Most features the per-feature-cost methods
                    attribute over. Default: 1024
        sample_rate (float, optional): Sample rate in Hz, for the log bands. Default: the zoo
                    model's, else None
        ks (int or sequence of int, optional): Numbers of top features removed for the flip
                    rates; ints >= 0 (floats raise rather than being truncated). Default: (1, 5)
        budget (int, optional): Queries per clip for KernelShap, Lime and ShapleyValueSampling
                    when FreqReX is not among the methods. Default: ``max_queries`` (or 1000)
        n_samples (int, optional): FreqReX's ``n_samples``. Default: 8
        max_queries (int, optional): FreqReX's query budget per clip. Default: 1000
        ig_steps (int, optional): IntegratedGradients' ``n_steps``. Default: 32
        perturbations_per_eval (int, optional): Mutants per model call for Captum's methods (and
                    IntegratedGradients' ``internal_batch_size``). Default: 32
        n_steps (int, optional): Intervals of the deletion and insertion curves. Default: 32
        max_examples_per_batch (int, optional): Mutants per model call in the metrics and for
                    FreqReX. Default: None (memory-bounded)
        domain (SpectralDomain, optional): The feature transform. Default: rfft
        per_channel (bool, optional): Per-channel features. Default: False
        decision (str, Decision or Callable, optional): The decision rule. Default: None
        seed (int, optional): Seed of FreqReX and of the random ranking. Default: 0
        zoo_model (str, optional): Zoo model used when ``model`` is None. Default: "instruments"
        n_clips (int, optional): Zoo clips used when ``clips`` is None. Default: 4
        strict (bool, optional): Raise when a method fails instead of recording the error in its
                    row. Default: False
        show_progress (bool, optional): Report each method's progress on stderr. Default: False
        output (None, str, int or Callable, optional): Where the scores are in what ``model``
                    returns, as for :class:`FreqReX` (``.logits``, a dict's ``"logits"`` and a
                    tuple's first element are found without it). Every method and metric then sees
                    those scores. Default: None

    Returns:
        ComparisonTable: ``.rows`` (one dict per method, in the order of ``methods``),
        ``.to_markdown()``, ``.to_csv(path)``.
    """
    names = list(METHODS if methods is None else methods)
    unknown = [m for m in names if m not in METHODS]
    if unknown or not names:
        raise ValueError(f"unknown methods {unknown}; choose from {list(METHODS)}")
    if (model is None) != (clips is None):
        raise ValueError("pass both model and clips, or neither (to use the zoo's example model)")
    if strict:  # before any work, not after FreqReX's
        for name in sorted(_NEEDS_SKLEARN.intersection(names)):
            _require_sklearn(name)
    if model is None:
        model, waves, zoo_rate, _ = load_zoo_inputs(zoo_model, n_clips)
        sample_rate = sample_rate or zoo_rate
    else:
        waves = _stack_clips(clips)
    output = check_output_selector(output)  # every method and metric picks the scores with it
    ks = _check_ks(ks)
    setup = _prepare(
        model, waves, baselines, target, feature_mask, band_mask, n_bands, max_perturbation_features,
        sample_rate, domain, per_channel, decision, max_examples_per_batch, output,
    )
    budgets = [budget or max_queries or 1000] * waves.shape[0]
    freqrex_options = dict(
        n_samples=n_samples, max_queries=max_queries, seed=seed, perturbations_per_eval=max_examples_per_batch
    )
    # FreqReX first: its queries per clip set the other methods' budgets.
    order = sorted(names, key=lambda m: m != "FreqReX")
    rows: Dict[str, Dict[str, Any]] = {}
    for name in order:
        if show_progress:
            print(f"[compare] {name} on {waves.shape[0]} clips ...", file=sys.stderr, flush=True)
        row: Dict[str, Any] = {"method": name}
        try:
            if name == "FreqReX":
                result = _run_freqrex(setup, freqrex_options)
                budgets = list(result.queries)
            elif name == "FreqReX-necessary":
                result = _run_freqrex(setup, dict(freqrex_options, mode="necessary"))
            elif name in ("magnitude", "random"):
                result = _run_naive(setup, name, seed)
            else:
                with torch.random.fork_rng(devices=[]):  # Captum's sampling, seeded without side effects
                    torch.manual_seed(seed)
                    result = _run_captum(setup, name, budgets, ig_steps, perturbations_per_eval)
            model_s = _mean([s.model_seconds for s in result.stats])
            wall_s = _mean([s.total_seconds for s in result.stats])
            row.update(
                features=result.features,
                queries=_mean(result.queries),
                wall_s=wall_s,
                model_s=model_s,
                overhead_s=max(wall_s - model_s, 0.0),
            )
            # A random ranking's fine order is its point: no energy preference among near ties.
            rank_rtol = 0.0 if name == "random" else DEFAULT_RTOL
            row.update(_score(setup, result, ks, n_steps, max_examples_per_batch, rank_rtol))
            row["error"] = None
        except Exception as error:  # one failing method (e.g. no gradients for IG) keeps the rest
            if strict:
                raise
            row["error"] = f"{type(error).__name__}: {error}"
            warnings.warn(f"compare_methods: {name} failed: {row['error']}", stacklevel=2)
        rows[name] = row
    table_rows = [rows[name] for name in names]
    columns = ["method", "features", "queries", "wall_s", "model_s", "overhead_s"]
    columns += [f"flip@{k}" for k in ks] + [f"snr_db@{k}" for k in ks]
    columns += ["min_sufficient", "sufficient_found", "sufficient_monotone", "deletion_auc", "insertion_auc"]
    if setup.band_mask is not None:
        columns += [f"flip@{k}_bands" for k in ks] + [f"snr_db@{k}_bands" for k in ks]
    columns += ["error"]
    table_rows = [{c: row.get(c) for c in columns} for row in table_rows]
    return ComparisonTable(table_rows, _notes(setup, names, ks, waves, table_rows))


def _check_ks(ks: Any) -> List[int]:
    """``ks`` as a list of ints >= 0 (an int is one k); floats are refused, not truncated."""
    if isinstance(ks, Tensor):
        ks = ks.tolist()
    values = list(ks) if isinstance(ks, (list, tuple, range)) else [ks]
    out = []
    for k in values:
        try:
            if isinstance(k, bool):
                raise TypeError
            out.append(operator.index(k))
        except TypeError:
            raise TypeError(
                f"ks must hold ints (numbers of top features removed), got {k!r}; floats are refused "
                "rather than truncated"
            ) from None
        if out[-1] < 0:
            raise ValueError(f"ks must hold ints >= 0, got {k}")
    return out


def _prefix_notes(setup: _Setup, rows: List[Dict[str, Any]], n_clips: int) -> List[str]:
    """What min_sufficient means here, and which methods' values rest on non-monotone rankings."""
    exhaustive = setup.n_eval <= MAX_SCAN_FEATURES
    notes = [
        "min_sufficient is the first top-k that keeps the decision alone among the prefix sizes evaluated "
        + (
            f"(every size: {setup.n_eval} evaluation features), so it is the smallest one. "
            if exhaustive
            else "(a batched exponential + bisection search), the smallest one when sufficiency is monotone "
            "along the ranking. "
        )
        + "sufficient_monotone is the share of clips whose evaluated sizes were monotone (no larger prefix "
        "lost the decision)."
    ]
    non_monotone = [
        f"{row['method']} ({round((1.0 - row['sufficient_monotone']) * n_clips)} of {n_clips} clips)"
        for row in rows
        if row.get("sufficient_monotone") is not None and row["sufficient_monotone"] < 1.0
    ]
    if non_monotone:
        notes.append(
            f"min_sufficient rests on a non-monotone ranking for {', '.join(non_monotone)}: there a prefix "
            "larger than the first sufficient one loses the decision again, so it is not a size from which "
            "on every prefix suffices"
            + ("." if exhaustive else ", and a smaller sufficient prefix may lie between the sizes evaluated.")
        )
    return notes


def _notes(
    setup: _Setup, names: List[str], ks: List[int], waves: Tensor, rows: List[Dict[str, Any]]
) -> List[str]:
    shape = "x".join(str(s) for s in waves.shape[1:])
    notes = [
        f"{waves.shape[0]} clips of {shape} samples; targets (flat class indices): {setup.targets.tolist()}.",
        f"Every ranking is evaluated over the same {setup.eval_features}: flip@k removes the top-k of them "
        f"(k = {', '.join(map(str, ks))}), min_sufficient counts them; a band's score goes to all its bins, and ties rank the louder bin first.",
        "queries, wall_s, model_s and overhead_s are per-clip means of the attribution alone (the metrics' "
        "own queries are not counted); IntegratedGradients' backward passes fall in overhead_s.",
    ]
    notes += _prefix_notes(setup, rows, waves.shape[0])
    if setup.band_mask is not None:
        coarse = sorted(PER_FEATURE_COST & set(names))
        if coarse:
            notes.append(
                f"{', '.join(coarse)} attributed over {setup.band_features}, because the {setup.n_eval} "
                f"evaluation features exceed max_perturbation_features: their cost grows with the number "
                f"of features (FeatureAblation needs one query per feature), which makes them intractable "
                f"over single bins of long clips (240,001 for 30 s at 16 kHz). Inside a band their scores "
                f"tie, so their top-k bins are the band's loudest ones."
            )
        notes.append(
            f"Columns ending in _bands evaluate every ranking over those {setup.band_features} instead "
            f"(a feature scores the mean of its bins; flip@k_bands removes the top-k bands)."
        )
    if "FreqReX" in names:
        notes.append(
            "Equal budgets: KernelShap and Lime draw as many samples as FreqReX made queries on each clip; "
            "ShapleyValueSampling gets the number of permutations closest to that many queries."
        )
    return notes
