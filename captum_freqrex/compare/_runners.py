"""The runners of a comparison: each attributes every clip, however its method is built.

Every method of a comparison is a runner: an object whose ``_run(setup, budgets, options)``
(called through :func:`attribute_all`) attributes every clip of the comparison and returns an
:class:`Attribution` (values over the feature grid, what it attributed over, one QueryStats per
clip). :func:`~captum_freqrex.compare.compare_methods` resolves each entry of ``methods`` to a
runner once, runs them one after the other and scores every result the same way: the composition
root does not know what a method is (as Captum's KernelShap is Lime given a kernel).
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, NamedTuple, Optional

import numpy as np
import torch
from torch import Tensor, nn

from captum_freqrex._core.forward_wrapper import FrequencyForward
from captum_freqrex._core.freqrex import FreqReX
from captum_freqrex._core.model.oracle import Oracle
from captum_freqrex._core.records import QueryStats
from captum_freqrex._core.spectral.space import FeatureSpace
from captum_freqrex._utils.validation import format_baselines, format_waveforms
from captum_freqrex.compare._setup import Setup, clip_baselines, feature_ids


@dataclass
class Attribution:
    """What a runner returns: its values over the feature grid, what it attributed over and one
    :class:`QueryStats` per clip."""

    values: Tensor  # (B, *feature_grid)
    features: str
    stats: List[QueryStats]  # per clip, from the oracle that called the model

    @property
    def queries(self) -> List[int]:
        return [s.queries for s in self.stats]


@dataclass(frozen=True)
class RunOptions:
    """What compare_methods hands every runner besides the clips."""

    explainer: FreqReX  # the FreqReX of the built-in names: the one passed as model, or built from the keywords
    freqrex: Dict[str, Any]  # attribute() keywords of the built-in FreqReX rows
    perturbations_per_eval: int  # mutants per model call of the Captum and shap methods
    seed: int


class Clip(NamedTuple):
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


class PerClipMethod:
    """The shared loop of the methods that attribute one clip at a time through FrequencyForward.

    Each clip gets its own :class:`Oracle` as FrequencyForward's model, so every method's model
    queries, model time and whole time are counted exactly as FreqReX's are; a subclass only says
    how to attribute one :class:`Clip` (``_attribute``).
    """

    #: Attribute over ``band_mask`` when the evaluation features exceed ``max_perturbation_features``.
    per_feature_cost: bool = False

    def _attribute(self, clip: Clip) -> Tensor:
        raise NotImplementedError

    def _run(self, setup: Setup, budgets: List[int], options: RunOptions) -> Attribution:
        coarse = self.per_feature_cost and setup.band_mask is not None
        mask, n_features, features = (
            (setup.band_mask, setup.n_band, setup.band_features)
            if coarse
            else (setup.eval_mask, setup.n_eval, setup.eval_features)
        )
        ids = feature_ids(setup.clips, setup.baselines, mask, setup.domain, setup.per_channel)[0] if mask is not None else None
        values, stats = [], []
        with _seeded(options.seed):  # Captum's and shap's sampling, seeded without side effects
            for i in range(setup.clips.shape[0]):
                oracle = Oracle(setup.model, setup.output)
                with oracle.measure():  # the wrapper's spectra count, as FreqReX's do
                    wrapped = FrequencyForward(
                        oracle, setup.clips[i : i + 1], clip_baselines(setup.baselines, setup.clips, i), setup.domain,
                        setup.per_channel,
                    )
                    ones, zeros = wrapped.ones(), wrapped.zeros()
                    assert isinstance(ones, Tensor) and isinstance(zeros, Tensor), "one waveform tensor, one grid"
                    clip = Clip(
                        wrapped, ones, zeros, setup.captum_targets[i], ids, n_features, budgets[i],
                        options.perturbations_per_eval, options.seed, setup.model,
                    )
                    attr = self._attribute(clip)
                values.append(_checked_attribution(attr, clip).detach() * setup.signs[i])
                stats.append(oracle.stats)
        return Attribution(torch.cat(values), features, stats)


def _checked_attribution(attr: Any, clip: Clip) -> Tensor:
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


class CaptumMethod(PerClipMethod):
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
        return inner_method(self.method)

    def _attribute(self, clip: Clip) -> Tensor:
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
            require_sklearn(type(self._core).__name__)
        gradients = isinstance(self._core, GradientAttribution)
        with self.forward.bound(clip.wrapped, clip.model), warnings.catch_warnings():
            if is_lime:
                warnings.simplefilter("ignore")  # sklearn convergence chatter on tiny budgets
            with torch.enable_grad() if gradients else contextlib.nullcontext():
                return self.method.attribute(clip.inputs, **kwargs)


class CallableMethod(PerClipMethod):
    """A user's function ``(wrapped, inputs, target) -> attributions``."""

    def __init__(self, function: Callable[[FrequencyForward, Tensor, Any], Tensor]) -> None:
        self.function = function

    def _attribute(self, clip: Clip) -> Tensor:
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

    def _run(self, setup: Setup, budgets: List[int], options: RunOptions) -> Attribution:
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
                    baselines=clip_baselines(setup.baselines, setup.clips, i),
                    target=int(setup.targets[i]),
                    feature_mask=setup.eval_mask,
                    per_channel=setup.per_channel,
                    **kwargs,
                )
            )
            stats.append(explainer.last_stats)  # its oracle's counts, and the whole call's time
        return Attribution(torch.cat(values), setup.eval_features, stats)


def _check_explainer(explainer: FreqReX, setup: Setup) -> None:
    """A FreqReX of the registry must explain the comparison's model over its features."""
    if explainer.forward_func is not setup.model:
        raise ValueError("this FreqReX explains another model than the comparison's: build it on the same model")
    if repr(explainer.domain) != repr(setup.domain):
        raise ValueError(
            f"this FreqReX's domain ({explainer.domain!r}) is not the comparison's ({setup.domain!r}): pass "
            "domain= to compare_methods as well, so every method is scored over the same features"
        )


class Naive:
    """A ranking without the model: ``"magnitude"`` (|X - Xb| per bin) or ``"random"`` (seeded)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def _run(self, setup: Setup, budgets: List[int], options: RunOptions) -> Attribution:
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
        return Attribution(values, features, [QueryStats(total_seconds=per_clip) for _ in range(n)])


def require_module(module: str, why: str, extra: str, package: str) -> Any:
    """``module``, imported, or an ImportError that says why it is needed and which extra brings it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(
            f'{why}, which is not installed: pip install "captum_freqrex[{extra}]" (or pip install {package})'
        ) from error


def require_sklearn(method: str) -> None:
    """Raise an ImportError that names the extra when scikit-learn, which ``method`` needs, is missing."""
    require_module("sklearn.linear_model", f"{method} fits its surrogate linear model with scikit-learn", "compare",
             "scikit-learn")


def inner_method(method: Any) -> Any:
    """The method inside a NoiseTunnel (or the method)."""
    return getattr(method, "attribution_method", method)


def attribute_all(runner: Any, setup: Setup, budgets: List[int], options: RunOptions) -> Attribution:
    """Every clip of the comparison attributed by ``runner`` (any runner of the registry)."""
    return runner._run(setup, budgets, options)
