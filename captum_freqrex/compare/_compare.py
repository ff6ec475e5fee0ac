""":func:`compare_methods`: every method on the same clips, model and features, in one table."""

from __future__ import annotations

from typing import Any, Callable, Mapping, Optional, Sequence, Tuple, Union

from captum_freqrex._core.freqrex import FreqReX
from captum_freqrex._core.model.decision import DecisionLike
from captum_freqrex._core.model.outputs import check_output_selector
from captum_freqrex._core.model.targets import TargetLike
from captum_freqrex._core.spectral.domains import SpectralDomain
from captum_freqrex._utils.validation import as_int
from captum_freqrex.compare._registry import build_registry, check_extras
from captum_freqrex.compare._runners import RunOptions
from captum_freqrex.compare._scoring import run_all
from captum_freqrex.compare._setup import check_ks, load_zoo_inputs, prepare, stack_clips
from captum_freqrex.compare._table import ComparisonTable, build_table


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
    registry = build_registry(methods, ig_steps, perturbations_per_eval)
    if budget is not None:
        budget = as_int(budget, "budget", minimum=1)
    if (model is None) != (clips is None):
        raise ValueError("pass both model and clips, or neither (to use the zoo's example model)")
    explainer, model, domain, decision, output = _resolve_explainer(model, domain, decision, output)
    if strict:  # before any work, not after FreqReX's
        check_extras(registry)
    if model is None:
        model, waves, zoo_rate, _ = load_zoo_inputs(zoo_model, n_clips)
        sample_rate = sample_rate or zoo_rate
    else:
        waves = stack_clips(clips)
    output = check_output_selector(output)  # every method and metric picks the scores with it
    ks = check_ks(ks)
    setup = prepare(
        model, waves, baselines, target, feature_mask, band_mask, n_bands, max_perturbation_features,
        sample_rate, domain, per_channel, decision, max_examples_per_batch, output,
    )
    options = RunOptions(
        explainer=explainer or FreqReX(model, domain=domain, decision=setup.decision, output=output),
        freqrex=dict(n_samples=n_samples, max_queries=max_queries, seed=seed, perturbations_per_eval=max_examples_per_batch),
        perturbations_per_eval=perturbations_per_eval,
        seed=seed,
    )
    budgets = [budget or max_queries or 1000] * waves.shape[0]
    rows = run_all(registry, setup, budgets, budget is None, options, ks, n_steps, max_examples_per_batch, strict,
                    show_progress)
    return build_table(setup, registry, ks, waves, rows, budget)


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
