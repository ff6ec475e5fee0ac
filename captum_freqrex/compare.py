"""FreqReX vs Captum's methods, the shap package and naive rankings over the same frequency features.

:func:`compare_methods` attributes a batch of clips with a registry of methods ``{name: method}``
and scores every ranking with :mod:`captum_freqrex.metrics` over the same evaluation features:
flip rate when the top-k features are removed, the minimal sufficient prefix, deletion and
insertion AUC; and every method's cost is counted the same way, by the one caller of the model
every method goes through (:class:`~captum_freqrex._core.model.oracle.Oracle`, FreqReX's own;
the other methods get it as the model of each clip's :class:`FrequencyForward`): model queries,
wall time, model time vs overhead, all from one :class:`QueryStats` per clip.

A method is

* a built-in name (:data:`METHODS`): FreqReX in both search modes (what keeps the decision,
  ``"FreqReX"``, and what changes it when removed, ``"FreqReX-necessary"``), Captum's
  IntegratedGradients, KernelShap, Lime, FeatureAblation and ShapleyValueSampling, and two naive
  rankings (the spectral magnitude of each feature; a seeded random order); or a name of
  :data:`SHAP_METHODS` (the ``shap`` extra);
* any Captum ``Attribution``: a class, built on each clip's :class:`FrequencyForward`, or an
  instance built on a :class:`ClipForward` (which compare_methods binds to each clip), alone or in
  a :class:`CaptumMethod` with the keywords of its ``attribute``;
* a :class:`ShapMethod` (GradientExplainer, KernelExplainer), a configured :class:`FreqReX` or a
  :class:`FreqReXMethod`;
* a function ``(wrapped, inputs, target) -> attributions`` of one clip's FrequencyForward.

Each becomes a runner (an object that attributes every clip); the loop that runs and scores them
does not know which kind it runs.

Tractability. FeatureAblation costs one query per feature, ShapleyValueSampling one per feature
per permutation, and KernelShap and Lime fit a regression with one column per feature. Over the
240,001 single rfft bins of a 30 s clip at 16 kHz they are intractable, so whenever the evaluation
features outnumber ``max_perturbation_features`` these four methods (and KernelExplainer, and any
method made with ``per_feature_cost=True``) attribute over a band mask
instead (``band_mask``; by default log-spaced bands), and the table says so in its ``features``
column. Their rankings are still evaluated over the evaluation features: a band's score goes to all
of its bins, and inside that tie the louder bin ranks first (the rule every ranking gets), so a band
method can only single out a bin of its band by loudness, which is the honest cost of the band
approximation.
"""

from __future__ import annotations

import contextlib
import inspect
import importlib
import math
import operator
import os
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor, nn

from captum_freqrex._core.spectral.bands import linear_bands, log_bands
from captum_freqrex._core.model.decision import DecisionLike
from captum_freqrex._core.spectral.domains import SpectralDomain
from captum_freqrex._core.spectral.space import FeatureSpace
from captum_freqrex._core.forward_wrapper import FrequencyForward
from captum_freqrex._core.certify.ranking import DEFAULT_RTOL
from captum_freqrex._core.freqrex import FreqReX
from captum_freqrex._core.model.oracle import Oracle
from captum_freqrex._core.model.outputs import OutputSelector, check_output_selector
from captum_freqrex._core.records import QueryStats
from captum_freqrex._core.model.targets import TargetLike
from captum_freqrex._utils.csv_cells import write_rows
from captum_freqrex._utils.tables import rows_to_pandas
from captum_freqrex._utils.validation import as_int, format_baselines, format_waveforms
from captum_freqrex.metrics import (
    deletion_curve,
    insertion_curve,
    minimal_sufficient_prefix,
    perturbation_success_rate,
)
from captum_freqrex.metrics._common import MetricRun
from captum_freqrex.metrics._curves import MAX_SCAN_FEATURES

__all__ = [
    "ComparisonTable",
    "compare_methods",
    "load_zoo_inputs",
    "ZooInputs",
    "METHODS",
    "SHAP_METHODS",
    "CaptumMethod",
    "ClipForward",
    "FreqReXMethod",
    "ShapMethod",
]

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

    def to_pandas(self) -> Any:
        """The table as a ``pandas.DataFrame``: one row per method, the columns of :meth:`to_csv`."""
        return rows_to_pandas(self.rows, self.columns)

    def to_csv(self, path: str) -> None:
        """Write the rows as CSV (one line per method; empty cells for missing values). Text cells a
        spreadsheet would run as a formula (a method named ``=...``, an error message) are neutralised."""
        with open(path, "w", newline="") as handle:
            write_rows(handle, self.rows, fieldnames=self.columns)

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


# ------------------------------------------------------------------------------------ the registry
#
# Every method of a comparison is a runner: an object whose ``_run(setup, budgets, options)``
# attributes every clip of the comparison and returns an ``_Attribution`` (values over the feature
# grid, what it attributed over, one QueryStats per clip). compare_methods resolves each entry of
# ``methods`` to a runner once, runs them one after the other and scores every result the same way:
# the composition root does not know what a method is (as Captum's KernelShap is Lime given a kernel).


@dataclass(frozen=True)
class _RunOptions:
    """What compare_methods hands every runner besides the clips."""

    explainer: FreqReX  # the FreqReX of the built-in names: the one passed as model, or built from the keywords
    freqrex: Dict[str, Any]  # attribute() keywords of the built-in FreqReX rows
    perturbations_per_eval: int  # mutants per model call of the Captum and shap methods
    seed: int


class _Clip(NamedTuple):
    """One clip, as a method that attributes through :class:`FrequencyForward` sees it."""

    wrapped: FrequencyForward  # the clip's frequency features; its model is an Oracle
    inputs: Tensor  # wrapped.ones(): (1, *feature_grid), every bin kept
    baselines: Tensor  # wrapped.zeros(): every bin removed
    target: Any  # Captum's target (None for a single-output model)
    feature_mask: Optional[Tensor]  # (1, *feature_grid) feature ids, or None for single bins
    n_features: int
    budget: int  # the model queries FreqReX made on this clip (or ``budget``)
    perturbations_per_eval: int
    seed: int
    model: Callable  # the user's model, which the oracle calls


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed torch's and numpy's global generators for a block, and restore both after it."""
    state = np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            np.random.seed(seed)
            yield
    finally:
        np.random.set_state(state)


class _PerClipMethod:
    """The shared loop of the methods that attribute one clip at a time through FrequencyForward.

    Each clip gets its own :class:`Oracle` as FrequencyForward's model, so every method's model
    queries, model time and whole time are counted exactly as FreqReX's are; a subclass only says
    how to attribute one :class:`_Clip` (``_attribute``).
    """

    #: Attribute over ``band_mask`` when the evaluation features exceed ``max_perturbation_features``.
    per_feature_cost: bool = False

    def _attribute(self, clip: _Clip) -> Tensor:
        raise NotImplementedError

    def _run(self, setup: _Setup, budgets: List[int], options: _RunOptions) -> _Attribution:
        coarse = self.per_feature_cost and setup.band_mask is not None
        mask, n_features, features = (
            (setup.band_mask, setup.n_band, setup.band_features)
            if coarse
            else (setup.eval_mask, setup.n_eval, setup.eval_features)
        )
        ids = _feature_ids(setup.clips, setup.baselines, mask, setup.domain, setup.per_channel)[0] if mask is not None else None
        values, stats = [], []
        with _seeded(options.seed):  # Captum's and shap's sampling, seeded without side effects
            for i in range(setup.clips.shape[0]):
                oracle = Oracle(setup.model, setup.output)
                with oracle.measure():  # the wrapper's spectra count, as FreqReX's do
                    wrapped = FrequencyForward(
                        oracle, setup.clips[i : i + 1], _clip_baselines(setup.baselines, setup.clips, i), setup.domain,
                        setup.per_channel,
                    )
                    ones, zeros = wrapped.ones(), wrapped.zeros()
                    assert isinstance(ones, Tensor) and isinstance(zeros, Tensor), "one waveform tensor, one grid"
                    clip = _Clip(
                        wrapped, ones, zeros, setup.captum_targets[i], ids, n_features, budgets[i],
                        options.perturbations_per_eval, options.seed, setup.model,
                    )
                    attr = self._attribute(clip)
                values.append(_checked_attribution(attr, clip).detach() * setup.signs[i])
                stats.append(oracle.stats)
        return _Attribution(torch.cat(values), features, stats)


def _checked_attribution(attr: Any, clip: _Clip) -> Tensor:
    if isinstance(attr, tuple) and len(attr) == 1:
        attr = attr[0]
    if not isinstance(attr, Tensor) or attr.shape != clip.inputs.shape:
        shape = tuple(attr.shape) if isinstance(attr, Tensor) else type(attr).__name__
        raise ValueError(
            f"a method must return attributions shaped like its inputs {tuple(clip.inputs.shape)} (one value per "
            f"frequency bin), got {shape}"
        )
    return attr


class ClipForward(nn.Module):
    r"""The forward function of the clip being compared: build configured Captum methods on it.

    A Captum method is built on a forward function, and :func:`compare_methods` needs each clip's
    own (a :class:`FrequencyForward` over that clip, whose model calls are counted). Build the
    method on a ``ClipForward`` instead; :func:`compare_methods` binds it to each clip's
    :class:`FrequencyForward` while that clip is attributed::

        >>> forward = ClipForward()
        >>> methods = {"SmoothGrad": CaptumMethod(NoiseTunnel(Saliency(forward)), nt_samples=8),
        ...            "DeepLift": DeepLift(forward)}

    While bound, the model under explanation is a submodule of it, so methods that hook the
    model's layers (DeepLift) find them. Calling it outside :func:`compare_methods` raises a
    ``RuntimeError``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.clip: Optional[nn.Module] = None
        self.model: Optional[nn.Module] = None

    @contextlib.contextmanager
    def bound(self, wrapped: FrequencyForward, model: Callable) -> Iterator["ClipForward"]:
        r"""Forward to ``wrapped`` inside the ``with`` block (``model``, when a module, is registered)."""
        self.clip = wrapped
        self.model = model if isinstance(model, nn.Module) else None
        try:
            yield self
        finally:
            self.clip = None
            self.model = None

    def forward(self, *args: Any) -> Tensor:
        r"""The bound clip's :meth:`FrequencyForward.forward`."""
        if self.clip is None:
            raise RuntimeError(
                "this ClipForward is not bound to a clip: compare_methods binds it to each clip while that clip "
                "is attributed; use FrequencyForward(model, clips) to call a method outside a comparison"
            )
        return self.clip(*args)


def _accepts(method: Any, name: str) -> bool:
    """Whether ``method.attribute`` takes the keyword ``name`` (through NoiseTunnel's ``**kwargs`` too)."""
    parameters = inspect.signature(method.attribute).parameters
    if name in parameters:
        return True
    inner = getattr(method, "attribution_method", None)
    forwards = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    return inner is not None and forwards and _accepts(inner, name)


class CaptumMethod(_PerClipMethod):
    r"""A Captum attribution method in a comparison, over each clip's frequency features.

    The Captum counterpart of ``NoiseTunnel(method)``: the configured method, plus the keywords
    its ``attribute`` gets. Every call also gets ``baselines`` (every bin removed), ``target``,
    ``feature_mask`` (the comparison's features, when not single bins) and
    ``perturbations_per_eval``, each only where ``attribute`` takes it; ``attribute_kwargs`` win.

    Args:
        method (Attribution class or instance): A class, built on each clip's
                    :class:`FrequencyForward` (``GradientShap``, ``Saliency``, ``DeepLift``, ...),
                    or an instance built on a :class:`ClipForward` (``NoiseTunnel(
                    IntegratedGradients(ClipForward()))``). An instance built on the model itself
                    is refused: it would attribute waveform samples, not frequencies.
        per_feature_cost (bool, optional): The method costs queries per feature (as
                    FeatureAblation): it attributes over ``band_mask`` when the evaluation features
                    exceed ``max_perturbation_features``. Default: False
        budget (Callable, optional): ``budget(queries, n_features) -> dict`` of ``attribute``
                    keywords from the clip's query budget (FreqReX's queries on it), e.g.
                    ``lambda q, n: {"n_samples": q}``. Default: None
        **attribute_kwargs: Keywords of the method's ``attribute`` (``n_steps=16``,
                    ``nt_samples=8``, ``sliding_window_shapes=(8,)``, ...).
    """

    def __init__(
        self,
        method: Any,
        *,
        per_feature_cost: bool = False,
        budget: Optional[Callable[[int, int], Dict[str, Any]]] = None,
        **attribute_kwargs: Any,
    ) -> None:
        from captum.attr import Attribution

        if isinstance(method, FreqReX) or (isinstance(method, type) and issubclass(method, FreqReX)):
            raise TypeError("FreqReX explains waveforms, not FrequencyForward's coefficients: pass FreqReX(model) itself")
        if isinstance(method, type) and issubclass(method, Attribution):
            self.forward = ClipForward()
            method = method(self.forward)
        elif isinstance(method, Attribution):
            forward = method.forward_func
            if not isinstance(forward, ClipForward):
                raise TypeError(
                    f"this {type(method).__name__} is built on {type(forward).__name__}, not on the frequency features "
                    "of the clips: build it on captum_freqrex.compare.ClipForward() (e.g. "
                    "NoiseTunnel(IntegratedGradients(ClipForward()))), or pass the class"
                )
            self.forward = forward
        else:
            raise TypeError(f"CaptumMethod takes a Captum Attribution class or instance, got {type(method).__name__}")
        self.method = method
        self.per_feature_cost = per_feature_cost
        self.budget = budget
        self.attribute_kwargs = attribute_kwargs

    @property
    def _core(self) -> Any:
        """The method inside a NoiseTunnel (or the method)."""
        return getattr(self.method, "attribution_method", self.method)

    def _attribute(self, clip: _Clip) -> Tensor:
        from captum.attr import GradientAttribution, Lime

        shared = dict(
            baselines=clip.baselines, target=clip.target, feature_mask=clip.feature_mask,
            perturbations_per_eval=clip.perturbations_per_eval,
        )
        kwargs = {k: v for k, v in shared.items() if (v is not None or k == "target") and _accepts(self.method, k)}
        if self.budget is not None:
            kwargs.update(self.budget(clip.budget, clip.n_features))
        kwargs.update(self.attribute_kwargs)
        is_lime = isinstance(self._core, Lime)
        if is_lime:
            _require_sklearn(type(self._core).__name__)
        gradients = isinstance(self._core, GradientAttribution)
        with self.forward.bound(clip.wrapped, clip.model), warnings.catch_warnings():
            if is_lime:
                warnings.simplefilter("ignore")  # sklearn convergence chatter on tiny budgets
            with torch.enable_grad() if gradients else contextlib.nullcontext():
                return self.method.attribute(clip.inputs, **kwargs)


class _CallableMethod(_PerClipMethod):
    """A user's function ``(wrapped, inputs, target) -> attributions``."""

    def __init__(self, function: Callable[[FrequencyForward, Tensor, Any], Tensor]) -> None:
        self.function = function

    def _attribute(self, clip: _Clip) -> Tensor:
        return self.function(clip.wrapped, clip.inputs, clip.target)


class FreqReXMethod:
    r"""FreqReX in a comparison: a configured :class:`FreqReX` and the keywords of its ``attribute``.

    Captum's ``NoiseTunnel(method)`` shape. The instance explains the waveforms themselves (not
    FrequencyForward's coefficients), clip by clip, over the comparison's evaluation features.

    Args:
        explainer (FreqReX, optional): The configured FreqReX; it must explain the comparison's
                    model in its domain. None: the one :func:`compare_methods` uses for its
                    ``"FreqReX"`` row (the ``model`` argument when that is a FreqReX, else built
                    from its keywords). Default: None
        **attribute_kwargs: Keywords of :meth:`FreqReX.attribute` (``max_queries``, ``mode``,
                    ``n_samples``, ...); :func:`compare_methods`' ``n_samples``, ``max_queries``,
                    ``seed`` and ``max_examples_per_batch`` fill the others.
    """

    def __init__(self, explainer: Optional[FreqReX] = None, **attribute_kwargs: Any) -> None:
        if explainer is not None and not isinstance(explainer, FreqReX):
            raise TypeError(f"FreqReXMethod takes a FreqReX instance, got {type(explainer).__name__}")
        self.explainer = explainer
        self.attribute_kwargs = attribute_kwargs

    def _run(self, setup: _Setup, budgets: List[int], options: _RunOptions) -> _Attribution:
        explainer = self.explainer or options.explainer
        defaults = dict(options.freqrex)
        if self.explainer is None:  # the metrics' decision, fixed once from the outputs on the clips
            defaults["decision"] = setup.decision
        else:
            _check_explainer(self.explainer, setup)
        kwargs = {**defaults, **self.attribute_kwargs}
        values, stats = [], []
        for i in range(setup.clips.shape[0]):
            values.append(
                explainer.attribute(
                    setup.clips[i : i + 1],
                    baselines=_clip_baselines(setup.baselines, setup.clips, i),
                    target=int(setup.targets[i]),
                    feature_mask=setup.eval_mask,
                    per_channel=setup.per_channel,
                    **kwargs,
                )
            )
            stats.append(explainer.last_stats)  # its oracle's counts, and the whole call's time
        return _Attribution(torch.cat(values), setup.eval_features, stats)


def _check_explainer(explainer: FreqReX, setup: _Setup) -> None:
    """A FreqReX of the registry must explain the comparison's model over its features."""
    if explainer.forward_func is not setup.model:
        raise ValueError("this FreqReX explains another model than the comparison's: build it on the same model")
    if repr(explainer.domain) != repr(setup.domain):
        raise ValueError(
            f"this FreqReX's domain ({explainer.domain!r}) is not the comparison's ({setup.domain!r}): pass "
            "domain= to compare_methods as well, so every method is scored over the same features"
        )


class _Naive:
    """A ranking without the model: ``"magnitude"`` (|X - Xb| per bin) or ``"random"`` (seeded)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def _run(self, setup: _Setup, budgets: List[int], options: _RunOptions) -> _Attribution:
        start = time.perf_counter()
        waves, _ = format_waveforms(setup.clips)
        bases = format_baselines(setup.baselines, waves)
        if self.kind == "magnitude":  # |X - Xb| per bin (summed over shared channels)
            space = FeatureSpace(waves, bases, None, setup.domain, setup.per_channel)
            energy = torch.stack([space.feature_energy(i) for i in range(space.batch_size)])
            values = space.to_grid(energy.sqrt().to(waves[0].dtype))[0]
        else:  # one uniform draw per evaluation feature, every bin of a feature alike
            space = FeatureSpace(waves, bases, setup.eval_mask, setup.domain, setup.per_channel)
            generator = torch.Generator().manual_seed(options.seed)
            draws = torch.rand(space.batch_size, space.n_features, generator=generator, dtype=torch.float64)
            values = space.to_grid(draws.to(space.device, waves[0].dtype))[0]
        n = setup.clips.shape[0]
        per_clip = (time.perf_counter() - start) / n
        features = f"{values[0].numel()} bins (magnitude)" if self.kind == "magnitude" else setup.eval_features
        return _Attribution(values, features, [QueryStats(total_seconds=per_clip) for _ in range(n)])


def _require(module: str, why: str, extra: str, package: str) -> Any:
    """``module``, imported, or an ImportError that says why it is needed and which extra brings it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(
            f'{why}, which is not installed: pip install "captum_freqrex[{extra}]" (or pip install {package})'
        ) from error


def _require_sklearn(method: str) -> None:
    """Raise an ImportError that names the extra when scikit-learn, which ``method`` needs, is missing."""
    _require("sklearn.linear_model", f"{method} fits its surrogate linear model with scikit-learn", "compare",
             "scikit-learn")


# ------------------------------------------------------------------------------ the shap package

#: The ``shap`` package's explainers :func:`compare_methods` knows by name (the ``shap`` extra).
SHAP_METHODS: Tuple[str, ...] = ("GradientExplainer", "KernelExplainer")


def _require_shap(method: str) -> Any:
    """The ``shap`` module, or an ImportError that names the extra."""
    return _require("shap", f"{method} is an explainer of the shap package", "shap", "shap")


class _TargetScore(nn.Module):
    """FrequencyForward's score of one target as a ``(N, 1)`` output, the one output shap explains."""

    def __init__(self, wrapped: FrequencyForward, target: Any) -> None:
        super().__init__()
        self.wrapped = wrapped
        self.target = target

    def forward(self, coefficients: Tensor) -> Tensor:
        scores = self.wrapped(coefficients)
        if self.target is None:  # a single-output model: its one score
            return scores.reshape(scores.shape[0], -1)[:, :1]
        index = self.target if isinstance(self.target, tuple) else (self.target,)
        return scores[(slice(None),) + tuple(index)].reshape(-1, 1)


class ShapMethod(_PerClipMethod):
    r"""An explainer of the ``shap`` package in a comparison, over each clip's frequency features.

    * ``"GradientExplainer"`` (expected gradients): shap's PyTorch explainer on
      :class:`FrequencyForward`'s score of the target, with every bin removed (``wrapped.zeros()``)
      as its background; ``nsamples`` defaults to the clip's query budget (each sample is one
      model row and one backward pass), ``rseed`` to the comparison's seed.
    * ``"KernelExplainer"`` (Kernel SHAP): model-agnostic, over the comparison's features (or
      ``band_mask`` when they are too many, as KernelShap): a coalition keeps its features and
      removes the others; the background is every feature removed. ``nsamples`` defaults to the
      clip's query budget and ``l1_reg`` to False (no feature selection: every feature gets a
      value, as with Captum's KernelShap).

    Needs the ``shap`` extra (``pip install "captum_freqrex[shap]"``).

    Args:
        explainer (str): ``"GradientExplainer"`` or ``"KernelExplainer"``.
        **shap_values_kwargs: Keywords of the explainer's ``shap_values`` (``nsamples``,
                    ``l1_reg``, ...), over the defaults above.
    """

    def __init__(self, explainer: str, **shap_values_kwargs: Any) -> None:
        if explainer not in SHAP_METHODS:
            raise ValueError(f"explainer must be one of {list(SHAP_METHODS)}, got {explainer!r}")
        self.explainer = explainer
        self.per_feature_cost = explainer == "KernelExplainer"
        self.shap_values_kwargs = shap_values_kwargs

    def _attribute(self, clip: _Clip) -> Tensor:
        shap = _require_shap(self.explainer)
        score = _TargetScore(clip.wrapped, clip.target)
        if self.explainer == "GradientExplainer":
            kwargs = {"nsamples": max(clip.budget, 1), "rseed": clip.seed, **self.shap_values_kwargs}
            explainer = shap.GradientExplainer(score, clip.baselines, batch_size=clip.perturbations_per_eval)
            with torch.enable_grad():
                values = explainer.shap_values(clip.inputs, **kwargs)
            values = torch.as_tensor(np.asarray(values), dtype=clip.inputs.dtype, device=clip.inputs.device)
            return values.reshape(clip.inputs.shape)
        return self._kernel(shap, score, clip)

    def _kernel(self, shap: Any, score: _TargetScore, clip: _Clip) -> Tensor:
        grid = clip.inputs.shape
        ids = clip.feature_mask.reshape(-1) if clip.feature_mask is not None else torch.arange(clip.inputs.numel())
        ids = ids.to(clip.inputs.device)
        n_features = int(ids.max()) + 1

        def coalition_scores(coalitions: Any) -> Any:  # (N, n_features) 0/1 -> (N,) target scores
            keep = torch.as_tensor(coalitions, dtype=clip.inputs.dtype, device=clip.inputs.device)[:, ids]
            keep = keep.reshape((keep.shape[0],) + tuple(grid[1:]))
            with torch.no_grad():
                rows = [score(part) for part in keep.split(clip.perturbations_per_eval)]
            return torch.cat(rows)[:, 0].double().cpu().numpy()

        explainer = shap.KernelExplainer(coalition_scores, np.zeros((1, n_features)))
        kwargs = {"nsamples": max(clip.budget, 2), "l1_reg": False, "silent": True, **self.shap_values_kwargs}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            values = explainer.shap_values(np.ones((1, n_features)), **kwargs)
        phi = torch.as_tensor(np.asarray(values), dtype=clip.inputs.dtype).reshape(-1)[:n_features]
        return phi.to(clip.inputs.device)[ids].reshape(grid)


# ----------------------------------------------------------------------------- resolving methods


def _samples(queries: int, n_features: int) -> Dict[str, Any]:
    """KernelShap's and Lime's budget: as many samples as FreqReX made queries."""
    return {"n_samples": max(queries, 2)}


def _permutations(queries: int, n_features: int) -> Dict[str, Any]:
    """ShapleyValueSampling's budget: the permutations closest to as many queries as FreqReX made."""
    return {"n_samples": max(1, round((queries - 1) / n_features))}


def _builtin(name: str, ig_steps: int, ppe: int) -> Any:
    """The runner of a built-in name (:data:`METHODS` and :data:`SHAP_METHODS`)."""
    from captum.attr import FeatureAblation, IntegratedGradients, KernelShap, Lime, ShapleyValueSampling

    if name in SHAP_METHODS:
        return ShapMethod(name)
    if name in ("magnitude", "random"):
        return _Naive(name)
    coarse = name in PER_FEATURE_COST
    table: Dict[str, Callable[[], Any]] = {
        "FreqReX": lambda: FreqReXMethod(),
        "FreqReX-necessary": lambda: FreqReXMethod(mode="necessary"),
        "IntegratedGradients": lambda: CaptumMethod(IntegratedGradients, n_steps=ig_steps, internal_batch_size=ppe),
        "KernelShap": lambda: CaptumMethod(KernelShap, per_feature_cost=coarse, budget=_samples),
        "Lime": lambda: CaptumMethod(Lime, per_feature_cost=coarse, budget=_samples),
        "FeatureAblation": lambda: CaptumMethod(FeatureAblation, per_feature_cost=coarse),
        "ShapleyValueSampling": lambda: CaptumMethod(ShapleyValueSampling, per_feature_cost=coarse, budget=_permutations),
    }
    return table[name]()


def _runner(method: Any, ig_steps: int, ppe: int) -> Any:
    """The runner of one registry entry: a name, a runner, a FreqReX, a Captum class or instance, a callable."""
    from captum.attr import Attribution

    if isinstance(method, str):
        return _builtin(method, ig_steps, ppe)
    if isinstance(method, (FreqReXMethod, _PerClipMethod, _Naive)):
        return method
    if isinstance(method, FreqReX):
        return FreqReXMethod(method)
    if isinstance(method, Attribution) or (isinstance(method, type) and issubclass(method, Attribution)):
        return CaptumMethod(method)
    if callable(method):
        return _CallableMethod(method)
    raise TypeError(
        f"a method is a name, a Captum Attribution class or instance, a FreqReX, a CaptumMethod / ShapMethod / "
        f"FreqReXMethod or a function (wrapped, inputs, target) -> attributions; got {type(method).__name__}"
    )


def _method_name(method: Any) -> str:
    """The row name of a method given in a sequence: its name, its class's, or its function's."""
    if isinstance(method, str):
        return method
    if isinstance(method, ShapMethod):
        return method.explainer
    if isinstance(method, (FreqReX, FreqReXMethod)):
        return "FreqReX"
    if isinstance(method, type):
        return method.__name__
    attribution = method.method if isinstance(method, CaptumMethod) else method
    inner = getattr(attribution, "attribution_method", None)  # NoiseTunnel(IntegratedGradients(...))
    if inner is not None:
        return f"{type(attribution).__name__}({type(inner).__name__})"
    return getattr(attribution, "__name__", type(attribution).__name__)


def _registry(methods: Any, ig_steps: int, ppe: int) -> Dict[str, Any]:
    """``methods`` as ``{name: runner}``, in table order; unknown names and duplicates raise."""
    if methods is None:
        entries = [(name, name) for name in METHODS]
    elif isinstance(methods, Mapping):
        entries = [(str(name), method) for name, method in methods.items()]
    elif isinstance(methods, str):
        entries = [(methods, methods)]
    else:
        entries = [(_method_name(method), method) for method in methods]
    known = METHODS + SHAP_METHODS
    unknown = [m for _, m in entries if isinstance(m, str) and m not in known]
    if unknown or not entries:
        raise ValueError(f"unknown methods {unknown}; choose from {list(known)}, or pass Captum methods or functions")
    names = [name for name, _ in entries]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"methods named twice: {repeated}; name them with a mapping, e.g. {{'IG-16': ..., 'IG-64': ...}}")
    return {name: _runner(method, ig_steps, ppe) for name, method in entries}


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
    methods: Union[None, Sequence[Any], Mapping[str, Any]] = None,
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
    deletion and insertion AUC. Methods with a sampling budget get FreqReX's (unless ``budget``
    is given): KernelShap and Lime
    draw as many samples as FreqReX made queries on that clip, ShapleyValueSampling as many
    permutations as make about as many queries; FeatureAblation costs one query per feature plus one. When the evaluation
    features outnumber ``max_perturbation_features``, the per-feature-cost methods (KernelShap,
    Lime, FeatureAblation, ShapleyValueSampling) attribute over ``band_mask`` instead, since over
    e.g. the 240,001 bins of a 30 s clip at 16 kHz they are intractable; their ``features`` cell
    says so.

    ``methods`` is a registry: besides the built-in names, any Captum method (a class such as
    ``GradientShap``, or an instance built on a :class:`ClipForward` such as
    ``NoiseTunnel(IntegratedGradients(ClipForward()))``, alone or in a :class:`CaptumMethod`
    with its ``attribute`` keywords), the ``shap`` package's explainers (``"GradientExplainer"``,
    ``"KernelExplainer"`` or a :class:`ShapMethod`), a configured :class:`FreqReX` (or a
    :class:`FreqReXMethod`), or a function ``(wrapped, inputs, target) -> attributions`` that gets
    each clip's :class:`FrequencyForward`, its ``wrapped.ones()`` and Captum's target. Every one is
    scored the same way.

    Args:
        model (Callable or FreqReX, optional): The classifier, waveforms ``(B, T)`` or
                    ``(B, C, T)`` to scores; or a configured :class:`FreqReX` (Captum's
                    ``NoiseTunnel(method)`` shape): its model is compared, its ``domain``,
                    ``decision`` and ``output`` are the comparison's, and it makes the
                    ``"FreqReX"`` rows, with ``n_samples``, ``max_queries``, ``seed`` and
                    ``max_examples_per_batch`` forwarded to its ``attribute``. The keywords
                    ``domain``, ``decision`` and ``output`` build that FreqReX otherwise (a
                    convenience: the results are the same). None loads ``zoo_model`` from
                    :mod:`captum_freqrex.zoo`. Default: None
        clips (Tensor or sequence, optional): ``(B, T)`` / ``(B, C, T)`` waveforms, or a sequence
                    of equal-length ``(T,)`` tensors or objects with a ``.waveform``. None takes the
                    zoo model's first ``n_clips`` sample clips. Default: None
        methods (sequence or mapping, optional): The methods, as ``{name: method}`` (the row
                    names) or a sequence (rows named after each method). A method is a name from
                    :data:`METHODS` (``"FreqReX"``, ``"FreqReX-necessary"``
                    (``mode="necessary"``: ranks what fools the model), ``"IntegratedGradients"``,
                    ``"KernelShap"``, ``"Lime"``, ``"FeatureAblation"``,
                    ``"ShapleyValueSampling"``, ``"magnitude"``, ``"random"``) or
                    :data:`SHAP_METHODS`, a Captum ``Attribution`` class or instance, a
                    :class:`CaptumMethod`, :class:`ShapMethod`, :class:`FreqReX` or
                    :class:`FreqReXMethod`, or a function ``(wrapped, inputs, target) ->
                    attributions`` (shaped like ``inputs``). The method named ``"FreqReX"`` sets
                    the budgets. Default: every name of :data:`METHODS`
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
        budget (int, optional): Queries per clip for the sampling methods (KernelShap, Lime,
                    ShapleyValueSampling, the shap explainers' ``nsamples``), FreqReX among the
                    methods or not. FreqReX's default often answers a clip in a few queries
                    (a loud peak alone keeps the decision), too few samples for Kernel SHAP over
                    many features: ``budget`` gives them their own count, and the notes say so.
                    Default: None, FreqReX's queries on each clip (equal budgets), or
                    ``max_queries`` (or 1000) when FreqReX is not among the methods
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
        show_progress (bool, optional): A progress bar over the methods on stderr (tqdm: a widget in
                    a notebook with ipywidgets), naming the method running. Default: False
        output (None, str, int or Callable, optional): Where the scores are in what ``model``
                    returns, as for :class:`FreqReX` (``.logits``, a dict's ``"logits"`` and a
                    tuple's first element are found without it). Every method and metric then sees
                    those scores. Default: None

    Returns:
        ComparisonTable: ``.rows`` (one dict per method, in the order of ``methods``),
        ``.to_markdown()``, ``.to_csv(path)``.
    """
    registry = _registry(methods, ig_steps, perturbations_per_eval)
    if budget is not None:
        budget = as_int(budget, "budget", minimum=1)
    if (model is None) != (clips is None):
        raise ValueError("pass both model and clips, or neither (to use the zoo's example model)")
    explainer, model, domain, decision, output = _resolve_explainer(model, domain, decision, output)
    if strict:  # before any work, not after FreqReX's
        _check_extras(registry)
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
    options = _RunOptions(
        explainer=explainer or FreqReX(model, domain=domain, decision=setup.decision, output=output),
        freqrex=dict(n_samples=n_samples, max_queries=max_queries, seed=seed, perturbations_per_eval=max_examples_per_batch),
        perturbations_per_eval=perturbations_per_eval,
        seed=seed,
    )
    budgets = [budget or max_queries or 1000] * waves.shape[0]
    rows = _run_all(registry, setup, budgets, budget is None, options, ks, n_steps, max_examples_per_batch, strict,
                    show_progress)
    return _table(setup, registry, ks, waves, rows, budget)


def _resolve_explainer(
    model: Any, domain: Optional[SpectralDomain], decision: DecisionLike, output: Any
) -> Tuple[Optional[FreqReX], Optional[Callable], Optional[SpectralDomain], DecisionLike, Any]:
    """A FreqReX passed as ``model`` configures the comparison: its model, domain, decision, output."""
    if not isinstance(model, FreqReX):
        return None, model, domain, decision, output
    given = {"domain": domain, "decision": decision, "output": output}
    clashes = [key for key, value in given.items() if value is not None and value is not getattr(model, key)]
    if clashes:
        raise ValueError(
            f"{', '.join(clashes)} given both to compare_methods and to the FreqReX passed as model: configure "
            "them on the FreqReX"
        )
    return model, model.forward_func, model.domain, model.decision, model.output


def _check_extras(registry: Dict[str, Any]) -> None:
    """Raise now, before any work, when a method's optional dependency is missing (``strict``)."""
    from captum.attr import Lime

    for name, runner in registry.items():
        if isinstance(runner, CaptumMethod) and isinstance(runner._core, Lime):
            _require_sklearn(name)
        elif isinstance(runner, ShapMethod):
            _require_shap(name)


def _run_method(
    name: str, runner: Any, setup: _Setup, budgets: List[int], options: _RunOptions, ks: List[int], n_steps: int,
    max_batch: Optional[int], strict: bool,
) -> Tuple[Dict[str, Any], Optional[_Attribution]]:
    """One method's row: its attribution's cost, then its scores; an error goes into the row unless strict."""
    row: Dict[str, Any] = {"method": name}
    try:
        result = runner._run(setup, budgets, options)
        model_s = _mean([s.model_seconds for s in result.stats])
        wall_s = _mean([s.total_seconds for s in result.stats])
        row.update(
            features=result.features, queries=_mean(result.queries), wall_s=wall_s, model_s=model_s,
            overhead_s=max(wall_s - model_s, 0.0),
        )
        # A random ranking's fine order is its point: no energy preference among near ties.
        rank_rtol = 0.0 if isinstance(runner, _Naive) and runner.kind == "random" else DEFAULT_RTOL
        row.update(_score(setup, result, ks, n_steps, max_batch, rank_rtol))
        row["error"] = None
        return row, result
    except Exception as error:  # one failing method (e.g. no gradients for IG) keeps the rest
        if strict:
            raise
        # The notes FreqReX's oracle adds to the model's own error (what to do) belong in the row too.
        row["error"] = "; ".join([f"{type(error).__name__}: {error}", *getattr(error, "__notes__", [])])
        warnings.warn(f"compare_methods: {name} failed: {row['error']}", stacklevel=3)
        return row, None


def _run_all(
    registry: Dict[str, Any], setup: _Setup, budgets: List[int], equal_budgets: bool, options: _RunOptions,
    ks: List[int], n_steps: int, max_batch: Optional[int], strict: bool, show_progress: bool,
) -> List[Dict[str, Any]]:
    """Every method's row, in registry order; the one named "FreqReX" runs first, to set the budgets
    (with ``equal_budgets``)."""
    from tqdm.auto import tqdm

    rows: Dict[str, Dict[str, Any]] = {}
    order = sorted(registry, key=lambda m: m != "FreqReX")
    # One bar over the methods (a notebook widget where ipywidgets exists), naming the one running.
    bar = tqdm(
        total=len(order), desc=f"compare on {setup.clips.shape[0]} clips", unit="method", file=sys.stderr,
        disable=not show_progress, dynamic_ncols=True,
    )
    with bar:
        for name in order:
            bar.set_postfix_str(name)
            rows[name], result = _run_method(name, registry[name], setup, budgets, options, ks, n_steps, max_batch, strict)
            if name == "FreqReX" and result is not None and equal_budgets:
                budgets = list(result.queries)
            bar.update(1)
    return [rows[name] for name in registry]


def _table(
    setup: _Setup, registry: Dict[str, Any], ks: List[int], waves: Tensor, rows: List[Dict[str, Any]],
    budget: Optional[int] = None,
) -> ComparisonTable:
    """The rows with every column (None where a method has no value), and the notes."""
    columns = ["method", "features", "queries", "wall_s", "model_s", "overhead_s"]
    columns += [f"flip@{k}" for k in ks] + [f"snr_db@{k}" for k in ks]
    columns += ["min_sufficient", "sufficient_found", "sufficient_monotone", "deletion_auc", "insertion_auc"]
    if setup.band_mask is not None:
        columns += [f"flip@{k}_bands" for k in ks] + [f"snr_db@{k}_bands" for k in ks]
    columns += ["error"]
    table_rows = [{c: row.get(c) for c in columns} for row in rows]
    coarse = sorted(name for name, runner in registry.items() if getattr(runner, "per_feature_cost", False))
    notes = _notes(setup, list(registry), coarse, ks, waves, table_rows, budget)
    sampled = [name for name, runner in registry.items() if isinstance(runner, ShapMethod)]
    if sampled and ("FreqReX" in registry or budget is not None):
        count = "FreqReX's number of queries on each clip" if budget is None else f"budget={budget} on each clip"
        notes.append(
            f"{', '.join(sampled)}: shap's nsamples is {count} (a GradientExplainer "
            "sample is one model row and one backward pass, a KernelExplainer sample one coalition)."
        )
    return ComparisonTable(table_rows, notes)


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
    setup: _Setup, names: List[str], coarse: List[str], ks: List[int], waves: Tensor, rows: List[Dict[str, Any]],
    budget: Optional[int] = None,
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
    if "FreqReX" in names and budget is None:
        notes.append(
            "Equal budgets: KernelShap and Lime draw as many samples as FreqReX made queries on each clip; "
            "ShapleyValueSampling gets the number of permutations closest to that many queries."
        )
    elif "FreqReX" in names:
        freqrex = next((row["queries"] for row in rows if row.get("method") == "FreqReX"), None)
        made = f" (FreqReX made {freqrex:g} a clip, mean)" if isinstance(freqrex, (int, float)) else ""
        notes.append(
            f"Budgets given, not equal: KernelShap and Lime draw budget={budget} samples on each clip{made}; "
            "ShapleyValueSampling gets the number of permutations closest to that many queries."
        )
    return notes
